"""Caller binding: a device's request may name only the device, site, stores, members and payments
its certificate stands for. The table is `auth.DEVICE_BINDINGS`; this module does its lookups.

`binder(storage)` gives the `bind(method, identity, request)` hook of `auth.AuthInterceptor`, which
runs it before the handler, so a refused call has written nothing. Rules (ARCHITECTURE.md, "Caller
binding"):

- device / site fields must equal the certificate's; empty ones are filled from it;
- a store field must name a store of the certificate's site (empty: the certificate's own store);
- a member field must name a member whose home site (`members.site_id`, one per member in this data
  model; Sync serves a device only its site's members) is the certificate's site. An unknown member
  is refused the same way, so a device cannot probe which ids exist at other sites;
- a payment field must name a payment taken in a store of the certificate's site (a refund at any
  till of the mall); an unknown payment id passes to the handler, which answers NOT_FOUND (payment
  ids are random UUIDs, so this tells nothing about other sites).

The lookups run in one read transaction. A member or store that moves site between this check and
the handler's own transaction is an operator action racing a device call; accepted.

Inside a Push, events that name something of one device (`EVENT_OWNERS`: a compensation closed at the
counter) are bound per event by `event_refusal`: a refused event is REJECTED (the device quarantines it
with the reason) and writes nothing, the rest of the push goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from api.v1 import crm_service_pb2
from cloud_stub.auth import DEVICE_BINDINGS, Binding, BindingDenied, PeerIdentity
from cloud_stub.storage import Storage

#: (kind, request field path, value) of one lookup to make.
_Lookup = tuple[str, str, str]


def _fill_and_collect(binding: Binding, ident: PeerIdentity, msg: Any, where: str, out: list[_Lookup]) -> None:
    """Check/fill the certificate's own ids in `msg`; collect the store/member/payment lookups."""
    for name in binding.device:
        value = getattr(msg, name)
        if not value:
            setattr(msg, name, ident.device_id)
        elif value != ident.device_id:
            raise BindingDenied(f"device {ident.device_id} may act only as itself, not as {where}{name}={value!r}")
    for name in binding.site:
        value = getattr(msg, name)
        if not value:
            setattr(msg, name, ident.site_id)
        elif value != ident.site_id:
            raise BindingDenied(f"device {ident.device_id} belongs to site {ident.site_id!r}, not {where}{name}={value!r}")
    for name in binding.store:
        value = getattr(msg, name)
        if not value:
            setattr(msg, name, ident.store_id)
        elif value != ident.store_id:  # its own store needs no lookup
            out.append(("store", where + name, value))
    out.extend(("member", where + name, getattr(msg, name)) for name in binding.member if getattr(msg, name))
    out.extend(("payment", where + name, getattr(msg, name)) for name in binding.payment if getattr(msg, name))
    if binding.items:
        assert binding.item is not None, f"binding of {binding.items!r} has no item binding"
        for i, item in enumerate(getattr(msg, binding.items)):
            _fill_and_collect(binding.item, ident, item, f"{where}{binding.items}[{i}].", out)


_SITE_OF = {
    "store": "SELECT site_id FROM stores WHERE store_id = ?",
    "member": "SELECT site_id FROM members WHERE member_id = ?",
    # A payment's site is its store's site (payments.store_id was checked when it was authorised). A payment
    # a π-POS took offline exists only as the purchase transaction its payment event booked (txn_id =
    # payment id): its store's site counts the same, so a refund of it is bound to the site too.
    "payment": "SELECT COALESCE(s.site_id, '') FROM payments p LEFT JOIN stores s ON s.store_id = p.store_id"
               " WHERE p.payment_id = ?1"
               " UNION ALL SELECT COALESCE(s.site_id, '') FROM transactions t LEFT JOIN stores s"
               f" ON s.store_id = t.store_id WHERE t.txn_id = ?1 AND t.kind = {crm_service_pb2.TRANSACTION_KIND_PURCHASE}"
               " LIMIT 1",
}


#: Device events (Sync.Push payloads) that name something only one device may touch, by event kind:
#: (payload field, what it names, the query giving the device it was issued to). A device may close only
#: its own compensation (the one the cloud answered to its own event). Fail closed: an unknown id is
#: refused with the same words as another device's, so a device cannot probe which ids exist.
EVENT_OWNERS: dict[str, tuple[str, str, str]] = {
    "reconciliation": ("compensation_id", "compensation", "SELECT device_id FROM compensations WHERE event_id = ?"),
}


def event_refusal(conn: Any, device_id: str, kind: str, payload: Any) -> str:
    """Why `device_id` may not push this `kind` of event naming what `payload` names ("" = it may);
    `conn` is an open cloud transaction (the caller applies the event in it when allowed)."""
    if kind not in EVENT_OWNERS:
        return ""
    field, what, sql = EVENT_OWNERS[kind]
    value = getattr(payload, field)
    row = conn.execute(sql, (value,)).fetchone() if value else None
    if row is None or row[0] != device_id:
        return f"device {device_id} may not act on {what} {value!r} ({field}): not a {what} issued to it"
    return ""


def check_request(storage: Storage, method: str, ident: PeerIdentity, request: Any) -> None:
    """Bind `request` of `method` to the device `ident` (see the module docstring); BindingDenied."""
    lookups: list[_Lookup] = []
    _fill_and_collect(DEVICE_BINDINGS[method], ident, request, "", lookups)
    if not lookups:
        return
    with storage.transaction("bind caller", write=False) as conn:
        for kind, field, value in dict.fromkeys(lookups):
            row = conn.execute(_SITE_OF[kind], (value,)).fetchone()
            if row is None and kind == "payment":
                continue  # the handler answers NOT_FOUND
            if row is None or row[0] != ident.site_id:
                raise BindingDenied(
                    f"device {ident.device_id} of site {ident.site_id!r} may not act for {kind} {value!r} "
                    f"({field}): not a {kind} of its site")


def binder(storage: Storage) -> Callable[[str, PeerIdentity, Any], None]:
    """The `bind` hook of `auth.AuthInterceptor` over `storage`."""

    def bind(method: str, ident: PeerIdentity, request: Any) -> None:
        check_request(storage, method, ident, request)

    return bind
