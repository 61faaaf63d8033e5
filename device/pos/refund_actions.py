"""The cashier's refund actions of the π-POS app (device.pos.app.PosApp): a scanned receipt opens its
sale, ticked lines or a keypad amount are previewed, a confirm books the refund, prints the slip and
opens the drawer for cash.

A mixin of PosApp, so the refund state (``refunding``, ``refund_preview``, ``refund_message``) stays
on the app where the screens and tests read it; the loop calls `refund_action` from `PosApp.handle`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from device.pos.audit import AuditLog
from device.pos.checkout import Checkout
from device.pos.payment import PaymentError, PaymentGateway, PaymentOffline
from device.pos.receipt import qr_text, refund_receipt, yuan
from device.pos.refund import open_sale, preview, refund, refund_by_qr
from device.pos.views import preview_view, refund_text

# The cashier-page actions handled here (contract: kiosk_ui.pos_contract).
REFUND_ACTIONS = frozenset({"refund", "refund_amount", "refund_lines", "refund_preview_amount",
                            "refund_preview_lines", "refund_close"})


def _line_numbers(text: str) -> list[int]:
    """ "0,2" → [0, 2] (the ticked lines of a refund)."""
    try:
        return [int(n) for n in str(text).split(",") if n.strip()]
    except ValueError as err:
        raise PaymentError(f"无效的商品行 · invalid line numbers {text[:40]!r}") from err


class RefundActions:
    """Refunds at the counter; PosApp provides the attributes and outputs declared here."""

    replica: Any
    audit: AuditLog
    checkout: Checkout
    gateway: PaymentGateway | None
    device_id: str
    store_id: str
    tz: tzinfo | None
    offline: bool
    refund_message: str
    refunding: dict[str, Any] | None  # the sale open for a refund (device.pos.refund.open_sale)
    refund_preview: dict[str, Any] | None  # its preview box (device.pos.views.preview_view)

    def _print(self, receipt: Any) -> None:  # pragma: no cover - PosApp's
        raise NotImplementedError

    def _kick_drawer(self) -> None:  # pragma: no cover - PosApp's
        raise NotImplementedError

    def refund_action(self, name: str, action: dict[str, Any]) -> None:
        """Act on one of the cashier's `REFUND_ACTIONS` (a PaymentError goes to the screen's message)."""
        if name == "refund":
            self.open_refund(str(action["code"]))
        elif name == "refund_amount":
            self.confirm_refund(str(action["sale"]), int(action["seq"]), cents=int(action["cents"]))
        elif name == "refund_lines":
            self.confirm_refund(str(action["sale"]), int(action["seq"]), lines=_line_numbers(action["lines"]))
        elif name == "refund_preview_amount":
            self.preview_refund(str(action["sale"]), int(action["seq"]), cents=int(action["cents"]))
        elif name == "refund_preview_lines":
            self.preview_refund(str(action["sale"]), int(action["seq"]), lines=_line_numbers(action["lines"]))
        elif name == "refund_close":
            self.refunding, self.refund_preview, self.refund_message = None, None, ""
            self.checkout._changed()
        else:
            raise PaymentError(f"pos-cashier cannot do {name!r}")

    def open_refund(self, code: str) -> dict[str, Any] | None:
        """A scanned receipt: show its sale on the cashier screen for a (partial) refund."""
        self.checkout._changed()
        self.refund_preview = None
        try:
            self.refunding = open_sale(self.replica, self.audit, code)
        except PaymentError as err:
            self.refunding, self.refund_message = None, str(err)
            return None
        pending = self.refunding["pending"]
        self.refund_message = (f"上一笔退款 {yuan(pending['amount_cents'])} 未完成，确认将重试 · refund "
                               f"{pending['seq']} is unfinished; confirming retries it") if pending else ""
        return self.refunding

    def preview_refund(self, sale_id: str, seq: int, *, cents: int | None = None,
                       lines: list[int] | None = None) -> dict[str, Any] | None:
        """The cashier ticked lines or typed an amount: show what confirming would do (refund amount,
        discount kept back and why, the coupon's fate, points, what is left) before the confirm. An ask
        for a sale no longer open is stale and ignored."""
        if self.refunding is None or self.refunding["sale_id"] != sale_id:
            return None
        pv = preview(self.replica, sale_id, seq, cents=cents, lines=lines)
        basis, key = ("lines", ",".join(str(n) for n in lines)) if lines else ("amount", str(int(cents or 0)))
        self.refund_preview = preview_view(basis, key, pv)
        self.checkout._changed()
        return self.refund_preview

    def confirm_refund(self, sale_id: str, seq: int, *, cents: int | None = None,
                       lines: list[int] | None = None) -> dict[str, Any] | None:
        """The cashier confirmed refund ``seq`` of a sale (an amount or ticked lines)."""
        return self._refund(lambda: refund(self.replica, self.audit, self.gateway, sale_id, seq=seq, cents=cents,
                                           lines=lines, store_id=self.store_id))

    def refund(self, code: str) -> dict[str, Any] | None:
        """Refund everything left of the sale of a scanned receipt (the whole sale when nothing was refunded)."""
        return self._refund(lambda: refund_by_qr(self.replica, self.audit, self.gateway, code,
                                                 store_id=self.store_id))

    def _refund(self, do: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        self.checkout._changed()  # the cashier screen shows the outcome
        try:
            sale = do()
        except PaymentOffline as err:
            self.offline = True
            self.refund_message = (f"云端不可达，请稍后重试（同一退款单） · cloud unreachable, try again later (the "
                                   f"same refund is retried) ({err})")
            return None
        except PaymentError as err:
            self.refund_message = str(err)
            return None
        finally:
            if self.refunding is not None:  # show the sale as it is now; the page asks for a new preview
                self.refund_preview = None
                self.refunding = open_sale(self.replica, self.audit, qr_text(self.refunding["sale_id"]))
        if sale["repeated"]:
            self.refund_message = f"退款 {sale['refund_seq']} 已完成 · refund {sale['refund_seq']} was already done"
            return sale
        self.refund_message = refund_text(sale)
        if sale["mode"] == "cash":
            self._kick_drawer()
        self._print(refund_receipt(sale, sale["refund_cents"], device_id=self.device_id, tz=self.tz,
                                   when_ms=sale["refunded_at_ms"]))
        return sale
