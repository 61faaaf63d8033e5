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
from device.pos.receipt import sale_id_from_qr, sale_receipt, yuan
from device.pos.refund_actions import REFUND_ACTIONS, RefundActions
from device.pos.views import cashier_view, customer_view
from drivers.errors import DriverError
from sync.errors import SyncError
from sync.notify import Watchdog

_LOG = logging.getLogger(__name__)

TICK_S = 0.2
CREDIT_REFRESH_S = 30.0  # one refresh round per this long while idle …
CREDIT_REFRESH_BATCH = 20  # … of at most this many members, the stalest first
CREDIT_STALE_S = 6 * 3600.0
RECONCILE_S = 1.0  # how often the loop looks for corrections the sync daemon brought back


class PosApp(RefundActions):
    """One π-POS: a checkout, its screens and its peripherals (refunds: device.pos.refund_actions)."""

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
                                 store_id=store_id, policy=self._policy())
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
            elif view == "pos-cashier" and name in REFUND_ACTIONS:
                self.refund_action(str(name), action)
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
        co.policy = self._policy()  # the gallery may have grown since the last sale (sync)
        co.face_result(result)
        self.refresh_screens()

    def _policy(self) -> Policy:
        # The payment threshold rises with the gallery (device/open_set.py): at a large site a face
        # alone seldom clears it, and the customer is asked for the phone's last four digits.
        limits = self.identifier.thresholds()
        return Policy(limits.base, limits.payment, self.identifier.min_margin)

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

