"""The π-POS app loop: touch actions and scans in, face step, receipts and drawer out, screens updated.

One thread (the caller's) runs the loop; touch actions arrive from the kiosk server's HTTP threads and
are only queued there. While the checkout waits for a face the loop runs the face step (camera frames
are read only then); after a sale it prints the receipt, opens the drawer for cash and shows the
amount on the customer display. A scanned receipt QR starts a refund; any other code is looked up in
the catalogue. In idle time it refreshes the JOY-CRED offline limits of the gallery's members.

Peripheral health comes from the supervisor (`set_health`, any thread): the cashier screen shows its
line; a held device (scanner, customer display) whose handle broke is left alone until the supervisor
sees it back, then reopened here. The loop pings systemd's watchdog (sync.notify.Watchdog).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import tzinfo
from typing import Any

from device.pos import reconcile, store
from device.pos.audit import AuditLog
from device.pos.checkout import Checkout, Policy
from device.pos.face import FaceCheck
from device.pos.payment import PaymentError, PaymentGateway, PaymentOffline
from device.pos.receipt import qr_text, refund_receipt, sale_id_from_qr, sale_receipt, yuan
from device.pos.refund import open_sale, preview, refund, refund_by_qr
from device.pos.views import cashier_view, customer_view, preview_view, refund_text
from drivers.errors import DriverError
from sync.errors import SyncError
from sync.notify import Watchdog

_LOG = logging.getLogger(__name__)

TICK_S = 0.2
CREDIT_REFRESH_S = 30.0  # one refresh round per this long while idle …
CREDIT_REFRESH_BATCH = 20  # … of at most this many members, the stalest first
CREDIT_STALE_S = 6 * 3600.0
RECONCILE_S = 1.0  # how often the loop looks for corrections the sync daemon brought back


def _line_numbers(text: str) -> list[int]:
    """ "0,2" → [0, 2] (the ticked lines of a refund)."""
    try:
        return [int(n) for n in str(text).split(",") if n.strip()]
    except ValueError as err:
        raise PaymentError(f"无效的商品行 · invalid line numbers {text[:40]!r}") from err


class PosApp:
    """One π-POS: a checkout, its screens and its peripherals."""

    def __init__(self, *, replica: Any, identifier: Any, face: FaceCheck, camera: Any,
                 gateway: PaymentGateway | None, publish: Callable[[str, dict[str, Any]], None],
                 device_id: str, store_id: str, printer: Any = None, drawer: Any = None, display: Any = None,
                 scanner: Any = None, catalog: dict[str, tuple[str, int]] | None = None,
                 timezone: tzinfo | None = None) -> None:
        self.replica, self.identifier, self.face, self.camera = replica, identifier, face, camera
        self.gateway, self.publish = gateway, publish
        self.device_id, self.store_id = device_id, store_id
        self.printer, self.drawer, self.display, self.scanner = printer, drawer, display, scanner
        self.catalog = dict(catalog or {})
        self.tz = timezone
        store.ensure_schema(replica)
        self.audit = AuditLog(replica)
        self.checkout = Checkout(replica=replica, audit=self.audit, gateway=gateway, device_id=device_id,
                                 store_id=store_id, policy=Policy(identifier.threshold, identifier.payment_threshold,
                                                                  identifier.min_margin))
        self.actions: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.offline = gateway is None
        self.refund_message = ""
        self.refunding: dict[str, Any] | None = None  # the sale open for a refund (device.pos.refund.open_sale)
        self.refund_preview: dict[str, Any] | None = None  # its preview box (device.pos.views.preview_view)
        self.sales_done: list[dict[str, Any]] = []
        self._published = -1
        self._next_credit = 0.0
        self._next_reconcile = 0.0
        self._cancel_face = threading.Event()
        self.degraded = ""  # the supervisor's line for the cashier ("打印机未连接 · 请检查USB线")
        self.lost: set[str] = set()  # held devices (scanner, customer_display) whose handle broke
        self._back: set[str] = set()  # … that the supervisor has seen present again
        self._health_lock = threading.Lock()
        self._health_changed = False
        self.watchdog = Watchdog()
        self.peripherals: dict[str, Any] = {}  # name → device.peripherals.Peripheral (set by build_pos_app)

    def set_health(self, text: str, missing: list[str]) -> None:
        """Peripheral health changed (supervisor thread): the loop republishes and reopens what is back."""
        with self._health_lock:
            self.degraded = text
            self._back |= {n for n in ("scanner", "customer_display") if n not in missing}
            self._health_changed = True

    def _apply_health(self) -> bool:
        with self._health_lock:
            changed, self._health_changed = self._health_changed, False
            back, self._back = self._back & self.lost, set()
        for name in back:
            device = self.scanner if name == "scanner" else self.display
            try:
                device.close()
                device.open()
                self.lost.discard(name)
                _LOG.info("%s reopened", name)
            except DriverError as err:
                _LOG.warning("%s: still not usable: %s", name, err)
        return changed

    def _lose(self, name: str, err: DriverError) -> None:
        # Logged once, not every tick: the supervisor owns retrying and tells the cashier.
        if name not in self.lost:
            _LOG.warning("%s: %s (waiting for it to come back)", name, err)
            self.lost.add(name)

    # -- inputs --------------------------------------------------------------------------------------

    def on_action(self, view: str) -> Callable[[dict[str, Any]], None]:
        """A kiosk action callback for ``view`` (it only queues; the loop acts)."""
        def take(action: dict[str, Any]) -> None:
            if view == "pos-customer" and action.get("action") == "cancel":
                self._cancel_face.set()  # reaches a running face step at once
            self.actions.put((view, action))
        return take

    def handle(self, view: str, action: dict[str, Any]) -> None:
        """Act on one touch action (errors become the screen's message, never a crash)."""
        co, name = self.checkout, action.get("action")
        try:
            if view == "pos-cashier" and name == "amount":
                co.set_amount(int(action["cents"]))
            elif view == "pos-cashier" and name == "scan":
                self.scan(str(action["code"]))
            elif view == "pos-cashier" and name == "cash":
                self._after_sale(co.pay_cash())
            elif view == "pos-cashier" and name == "new":
                co.new_sale()
            elif view == "pos-cashier" and name == "refund":
                self.open_refund(str(action["code"]))
            elif view == "pos-cashier" and name == "refund_amount":
                self.confirm_refund(str(action["sale"]), int(action["seq"]), cents=int(action["cents"]))
            elif view == "pos-cashier" and name == "refund_lines":
                self.confirm_refund(str(action["sale"]), int(action["seq"]), lines=_line_numbers(action["lines"]))
            elif view == "pos-cashier" and name == "refund_preview_amount":
                self.preview_refund(str(action["sale"]), int(action["seq"]), cents=int(action["cents"]))
            elif view == "pos-cashier" and name == "refund_preview_lines":
                self.preview_refund(str(action["sale"]), int(action["seq"]), lines=_line_numbers(action["lines"]))
            elif view == "pos-cashier" and name == "refund_close":
                self.refunding, self.refund_preview, self.refund_message = None, None, ""
                co._changed()
            elif view == "pos-cashier" and name == "collect":
                item = reconcile.resolve(self.replica, self.audit, str(action["id"]))
                self.refund_message = f"已补收 {yuan(item['amount_cents'])} · difference collected"
                co._changed()
            elif view == "pos-customer" and name == "face":
                self._cancel_face.clear()
                co.begin_face()
            elif view == "pos-customer" and name == "phone":
                co.enter_phone(str(action["digits"]))
            elif view == "pos-customer" and name == "confirm":
                self._after_sale(co.confirm(by="customer"))
            elif view == "pos-customer" and name == "cancel":
                co.new_sale()
            else:
                raise PaymentError(f"{view} cannot do {name!r}")
        except PaymentError as err:
            with co._lock:
                co.message = str(err)
                co._changed()
        self.refresh_screens()

    def scan(self, code: str) -> None:
        """A scanned code: a receipt QR opens the sale for a refund, a catalogue code adds the item."""
        if sale_id_from_qr(code):
            self.open_refund(code)
            return
        item = self.catalog.get(code)
        if item is None:
            raise PaymentError(f"未知商品 {code[:32]} · unknown item code")
        self.checkout.add_item(item[0], int(item[1]), code)

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

    # -- outputs -------------------------------------------------------------------------------------

    def _after_sale(self, outcome: dict[str, Any]) -> None:
        sale = outcome.get("sale")
        if outcome["state"] != "paid" or sale is None or any(s["sale_id"] == sale["sale_id"] for s in self.sales_done):
            return  # not paid, or a repeated press of a sale already printed
        self.sales_done.append(sale)
        if sale["method"] == "face":
            self.offline = sale["mode"] == "offline"  # the screens say so: the cloud could not be reached
        member = self.replica.member(sale["member_id"]) if sale["member_id"] else None
        self._print(sale_receipt(sale, device_id=self.device_id, store_id=self.store_id, member=member, tz=self.tz))
        if sale["method"] == "cash":
            self._kick_drawer()
        self._show(f"PAID {yuan(sale['paid_cents'])}", "THANK YOU")

    def _print(self, receipt: Any) -> None:
        if self.printer is None:
            return
        try:
            self.printer.open()
            try:
                n = self.printer.print_receipt(receipt)
            finally:
                self.printer.close()
            _LOG.info("receipt printed (%d bytes)", n)
        except DriverError as err:
            _LOG.error("receipt not printed: %s", err)
            self.refund_message = f"打印机故障 · printer: {err}"

    def _kick_drawer(self) -> None:
        if self.drawer is None:
            return
        try:
            self.drawer.printer.open()
            try:
                self.drawer.open()
            finally:
                self.drawer.printer.close()
        except DriverError as err:
            _LOG.error("cash drawer did not open: %s", err)

    def _show(self, line1: str, line2: str = "") -> None:
        if self.display is None or "customer_display" in self.lost:
            return
        try:
            self.display.show(line1, line2)
        except DriverError as err:
            self._lose("customer_display", err)

    def refresh_screens(self, force: bool = False) -> None:
        """Publish both screens when the checkout changed."""
        co = self.checkout
        if not force and co.version == self._published:
            return
        self._published = co.version
        self.publish("pos-customer", customer_view(co, offline=self.offline, device=self.device_id))
        cashier = cashier_view(co, offline=self.offline, device=self.device_id, refund=self.refund_message,
                               reconcile=reconcile.items(self.replica), refunding=self.refunding,
                               preview=self.refund_preview)
        if self.degraded:
            cashier["degraded"] = self.degraded
        self.publish("pos-cashier", cashier)
        if co.state == "cart":
            self._show(f"TOTAL {yuan(co.amount_cents)}")

    # -- the loop ------------------------------------------------------------------------------------

    def run_face_step(self) -> None:
        """The checkout waits for a face: run the face step and hand its result over."""
        co = self.checkout
        result = self.face.run(self.camera, cancelled=lambda: self._cancel_face.is_set() or co.state != "face",
                               on_prompt=lambda action: (co.set_challenge(action), self.refresh_screens()))
        co.face_result(result)
        self.refresh_screens()

    def step(self) -> None:
        """One turn of the loop: queued actions, a pending face step, scans, idle work."""
        while True:
            try:
                view, action = self.actions.get_nowait()
            except queue.Empty:
                break
            self.handle(view, action)
        if self.checkout.state == "face" and not self._cancel_face.is_set():
            self.run_face_step()
        health_changed = self._apply_health()
        self.reconcile()
        if self._scanning:
            try:
                codes = self.scanner.read(TICK_S)
            except DriverError as err:
                self._lose("scanner", err)
                codes = []
            for code in codes:
                self.actions.put(("pos-cashier", {"action": "scan", "code": code}))
        self.refresh_screens(force=health_changed)

    def reconcile(self, force: bool = False) -> list[dict[str, Any]]:
        """Pick up the cloud's corrections (at most every RECONCILE_S); returns the new items."""
        now = time.monotonic()
        if not force and now < self._next_reconcile:
            return []
        self._next_reconcile = now + RECONCILE_S
        try:
            new = reconcile.absorb(self.replica, self.audit)
        except SyncError as err:  # a busy replica: the next turn tries again
            _LOG.warning("reconciliation: %s", err)
            return []
        for item in new:
            _LOG.warning("reconciliation: sale %s: %s (%s)", item["sale_id"], reconcile.text(item), item["message"])
        if new:
            self.checkout._changed()
        return new

    @property
    def _scanning(self) -> bool:
        return self.scanner is not None and "scanner" not in self.lost

    def run(self, stop: threading.Event) -> None:
        """Serve the counter until ``stop`` is set."""
        self.identifier.gallery.refresh_from(self.replica, None)
        self.camera.open()
        if self.depth_camera is not None:
            self.depth_camera.open()
        self.refresh_screens(force=True)
        self.watchdog.ready()
        try:
            while not stop.is_set():
                self.watchdog.ping()
                self.step()
                if self.actions.empty():
                    self.refresh_credit()
                    if not self._scanning:  # nothing to wait on but the screens' actions
                        try:
                            view, action = self.actions.get(timeout=TICK_S)
                            self.handle(view, action)
                        except queue.Empty:
                            pass
        finally:
            self.camera.close()
            if self.depth_camera is not None:
                self.depth_camera.close()

    @property
    def depth_camera(self) -> Any:
        """The depth camera of the face step (flagship), or None."""
        return self.face.depth

    def refresh_credit(self, force: bool = False) -> int:
        """Fetch JOY-CRED offline limits for the stalest gallery members; returns how many were updated."""
        now = time.monotonic()
        if self.gateway is None or (not force and now < self._next_credit):
            return 0
        self._next_credit = now + CREDIT_REFRESH_S
        ages = store.credit_age(self.replica)
        members = sorted(store.face_members(self.replica), key=lambda m: ages.get(m, 0))
        fresh_after = int(time.time() * 1000) - int(CREDIT_STALE_S * 1000)
        done = 0
        for member in [m for m in members if ages.get(m, 0) < fresh_after or force][:CREDIT_REFRESH_BATCH]:
            try:
                grade, limit = self.gateway.credit(member)
            except PaymentOffline:
                self.offline = True
                break
            except PaymentError as err:
                _LOG.warning("credit of %s: %s", member, err)
                continue
            store.put_credit(self.replica, member, grade, limit)
            self.offline = False
            done += 1
        if done:
            self.checkout._changed()
        return done

