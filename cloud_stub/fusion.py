"""Identity fusion: the identity graph, brand correlation, and licence plates for 人脸寻车.

Identity graph
    Nodes are members; each identity (MEMBER_ID, OPEN_ID, UNION_ID, MAC_ID, FACE_ID, PHONE) is an edge
    to exactly one member, with evidence, confidence and the time it was observed. Phones are stored as
    their hash. A merge moves the absorbed member's identities to the kept one and records
    absorbed → kept; resolution follows those records, so the absorbed member id still resolves. Each
    identity remembers the member it was first linked to (`origin_member_id`), so a merge can be
    undone exactly by `split`. FACE_ID falls back to the face template's owner, PHONE to the member's
    phone hash, so enrolled faces and known phones resolve without an explicit link.

Brand correlation
    Over the members who bought anything: support(A) = share who bought brand A; for a pair,
    confidence(A→B) = P(B | A) and lift = P(A ∧ B) / (P(A) · P(B)) (> 1: bought together more often
    than chance). Brand clusters are the connected components of pairs with lift ≥ CLUSTER_LIFT.

Plates
    plate ↔ member links (with evidence) and the bay each car is parked in; `find_car` resolves any
    identity (e.g. the FACE-ID a mirror matched) to the member's parked cars.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from api.v1 import fusion_pb2
from cloud_stub import validate
from cloud_stub.crm import PURCHASE
from cloud_stub.errors import ConflictError, InvalidRequestError, NotFoundError
from cloud_stub.storage import Storage, now_ms, phone_hash
from cloud_stub.storage import db as sqldb

ID_TYPES = {v for k, v in fusion_pb2.IdType.items() if v != fusion_pb2.ID_TYPE_UNSPECIFIED}
CLUSTER_LIFT = 1.2
DEFAULT_MIN_MEMBERS = 5
MAX_MERGE_DEPTH = 64
_PLATE_RE = re.compile(r"[\u4e00-\u9fff]?[A-Z0-9]{5,8}")


def _key(id_type: int, id_value: str) -> str:
    if id_type not in ID_TYPES:
        raise InvalidRequestError(f"id_type must be one of {', '.join(fusion_pb2.IdType.keys()[1:])}, got {id_type}")
    if id_type == fusion_pb2.ID_TYPE_PHONE:
        validate.phone(id_value)
        if not id_value:
            raise InvalidRequestError("id_value is required")
        return phone_hash(id_value)
    return validate.ident(id_value, "id_value")


def _follow(conn: Any, member_id: str) -> list[str]:
    path = [member_id]
    while len(path) <= MAX_MERGE_DEPTH:
        row = conn.execute("SELECT kept_id FROM member_merges WHERE absorbed_id = ?", (path[-1],)).fetchone()
        if row is None:
            return path
        path.append(row[0])
    raise ConflictError(f"merge chain from {member_id!r} is longer than {MAX_MERGE_DEPTH}; split some merges")


def link(storage: Storage, *, id_type: int, id_value: str, member_id: str, evidence: str, confidence: float,
         observed_at_ms: int) -> dict[str, Any]:
    """Link an identity to a member (re-linking to the same member refreshes evidence and time)."""
    key = _key(id_type, id_value)
    validate.ident(member_id, "member_id")
    validate.text(evidence, "evidence", required=True, max_len=500)
    if not 0.0 <= confidence <= 1.0:
        raise InvalidRequestError(f"confidence must be between 0 and 1, got {confidence}")
    at = validate.event_time(observed_at_ms, "observed_at_ms") if observed_at_ms else now_ms()
    with storage.transaction("link identity") as conn:
        sqldb.member_site(conn, member_id)
        old = conn.execute("SELECT member_id FROM identities WHERE id_type = ? AND id_value = ?",
                           (id_type, key)).fetchone()
        if old is not None and old[0] != member_id:
            raise ConflictError(f"this identity is linked to member {old[0]!r}; merge the members or split it first")
        conn.execute(
            "INSERT INTO identities (id_type, id_value, member_id, origin_member_id, evidence, confidence,"
            " observed_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id_type, id_value) DO UPDATE SET"
            " evidence = excluded.evidence, confidence = excluded.confidence, observed_at_ms = excluded.observed_at_ms",
            (id_type, key, member_id, member_id, evidence, confidence, at),
        )
        return dict(conn.execute("SELECT * FROM identities WHERE id_type = ? AND id_value = ?", (id_type, key)).fetchone())


def resolve(storage: Storage, id_type: int, id_value: str) -> dict[str, Any]:
    """{member_id, via (identity row or None), merged_path} for any identity; NotFoundError if unknown."""
    key = _key(id_type, id_value)
    with storage.transaction("resolve identity", write=False) as conn:
        via = conn.execute("SELECT * FROM identities WHERE id_type = ? AND id_value = ?", (id_type, key)).fetchone()
        owner = via["member_id"] if via is not None else None
        if owner is None and id_type == fusion_pb2.ID_TYPE_MEMBER_ID:
            owner = key if conn.execute("SELECT 1 FROM members WHERE member_id = ?", (key,)).fetchone() else None
        if owner is None and id_type == fusion_pb2.ID_TYPE_FACE_ID:
            row = conn.execute("SELECT member_id FROM templates WHERE template_id = ?", (key,)).fetchone()
            owner = row[0] if row else None
        if owner is None and id_type == fusion_pb2.ID_TYPE_PHONE:
            rows = conn.execute("SELECT member_id FROM members WHERE phone_hash = ?", (key,)).fetchall()
            if len(rows) > 1:
                raise ConflictError("this phone belongs to several members; link it explicitly or merge them")
            owner = rows[0][0] if rows else None
        if owner is None:
            raise NotFoundError(f"no member is linked to {fusion_pb2.IdType.Name(id_type)} {id_value[:40]!r}")
        path = _follow(conn, owner)
    return {"member_id": path[-1], "via": dict(via) if via is not None else None, "merged_path": path}


def list_identities(storage: Storage, member_id: str) -> list[dict[str, Any]]:
    """A member's identities, by type and value."""
    validate.ident(member_id, "member_id")
    with storage.transaction("list identities", write=False) as conn:
        sqldb.member_site(conn, member_id)
        rows = conn.execute("SELECT * FROM identities WHERE member_id = ? ORDER BY id_type, id_value", (member_id,))
        return [dict(r) for r in rows]


def merge(storage: Storage, keep: str, absorb: str, evidence: str) -> int:
    """Merge member `absorb` into `keep`; returns how many identities moved."""
    validate.ident(keep, "keep_member_id")
    validate.ident(absorb, "absorb_member_id")
    validate.text(evidence, "evidence", required=True, max_len=500)
    if keep == absorb:
        raise InvalidRequestError("cannot merge a member into itself")
    with storage.transaction("merge members") as conn:
        sqldb.member_site(conn, keep)
        sqldb.member_site(conn, absorb)
        if conn.execute("SELECT 1 FROM member_merges WHERE absorbed_id = ?", (absorb,)).fetchone():
            raise ConflictError(f"member {absorb!r} was already merged; resolve it to find its current member")
        if absorb in _follow(conn, keep):
            raise ConflictError(f"member {keep!r} was merged into {absorb!r}; merge the other way round")
        moved = conn.execute("UPDATE identities SET member_id = ? WHERE member_id = ?", (keep, absorb)).rowcount
        conn.execute("INSERT INTO member_merges (absorbed_id, kept_id, evidence, merged_at_ms) VALUES (?, ?, ?, ?)",
                     (absorb, keep, evidence, now_ms()))
    return int(moved)


def split(storage: Storage, member_id: str, to_member_id: str, identities: list[tuple[int, str]], evidence: str) -> int:
    """Move identities from `member_id` to `to_member_id`; with none listed, undo the merge of
    `to_member_id` into `member_id`. Returns how many identities moved."""
    validate.ident(member_id, "member_id")
    validate.ident(to_member_id, "to_member_id")
    validate.text(evidence, "evidence", max_len=500)
    keys = [(t, _key(t, v)) for t, v in identities]
    with storage.transaction("split identities") as conn:
        sqldb.member_site(conn, member_id)
        sqldb.member_site(conn, to_member_id)
        if not keys:
            merged = conn.execute("SELECT kept_id FROM member_merges WHERE absorbed_id = ?", (to_member_id,)).fetchone()
            if merged is None or merged[0] != member_id:
                raise ConflictError(f"member {to_member_id!r} was not merged into {member_id!r}; list identities to move")
            conn.execute("DELETE FROM member_merges WHERE absorbed_id = ?", (to_member_id,))
            return int(conn.execute("UPDATE identities SET member_id = ? WHERE member_id = ? AND origin_member_id = ?",
                                    (to_member_id, member_id, to_member_id)).rowcount)
        for t, k in keys:
            row = conn.execute("SELECT member_id FROM identities WHERE id_type = ? AND id_value = ?", (t, k)).fetchone()
            if row is None or row[0] != member_id:
                raise NotFoundError(f"member {member_id!r} has no {fusion_pb2.IdType.Name(t)} identity like that")
            conn.execute("UPDATE identities SET member_id = ?, origin_member_id = ? WHERE id_type = ? AND id_value = ?",
                         (to_member_id, to_member_id, t, k))
        return len(keys)


def brand_correlation(storage: Storage, site_id: str = "", min_members: int = 0) -> dict[str, Any]:
    """Pairs of brands with support, confidence and lift, and brand clusters (see the module docstring)."""
    if site_id:
        validate.ident(site_id, "site_id")
    if min_members < 0:
        raise InvalidRequestError(f"min_members must be >= 0, got {min_members}")
    floor = min_members or DEFAULT_MIN_MEMBERS
    sql = "SELECT DISTINCT t.member_id, t.brand FROM transactions t"
    args: tuple[Any, ...] = (PURCHASE,)
    if site_id:
        sql += " JOIN members m ON m.member_id = t.member_id WHERE t.kind = ? AND t.brand != '' AND m.site_id = ?"
        args = (PURCHASE, site_id)
    else:
        sql += " WHERE t.kind = ? AND t.brand != ''"
    with storage.transaction("brand correlation", write=False) as conn:
        rows = conn.execute(sql, args).fetchall()
    members = sorted({r[0] for r in rows})
    brands = sorted({r[1] for r in rows})
    if not members or len(brands) < 2:
        return {"members": len(members), "pairs": [], "clusters": [[b] for b in brands]}
    mi = {m: i for i, m in enumerate(members)}
    bi = {b: i for i, b in enumerate(brands)}
    x = np.zeros((len(members), len(brands)), dtype=np.float32)
    x[[mi[r[0]] for r in rows], [bi[r[1]] for r in rows]] = 1.0
    co = x.T @ x
    n = float(len(members))
    single = np.diag(co)
    pairs = []
    parent = list(range(len(brands)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a in range(len(brands)):
        for b in range(a + 1, len(brands)):
            both = float(co[a, b])
            if both < floor:
                continue
            lift = (both / n) / ((single[a] / n) * (single[b] / n))
            pairs.append({"brand_a": brands[a], "brand_b": brands[b], "members_both": int(both),
                          "support": both / n, "confidence_a_to_b": both / single[a], "lift": float(lift)})
            if lift >= CLUSTER_LIFT:
                parent[find(a)] = find(b)
    pairs.sort(key=lambda p: (-p["lift"], p["brand_a"], p["brand_b"]))
    groups: dict[int, list[str]] = {}
    for i, b in enumerate(brands):
        groups.setdefault(find(i), []).append(b)
    clusters = sorted(groups.values(), key=lambda g: (-len(g), g))
    return {"members": len(members), "pairs": pairs, "clusters": clusters}


def _plate(plate: str) -> str:
    p = plate.strip().upper()
    if not _PLATE_RE.fullmatch(p):
        raise InvalidRequestError(f"plate {plate[:20]!r} is not a licence plate (e.g. 沪A12345)")
    return p


def link_plate(storage: Storage, plate: str, member_id: str, evidence: str, observed_at_ms: int = 0) -> dict[str, Any]:
    """Link a licence plate to a member (a plate has one owner at a time; re-linking moves it)."""
    p = _plate(plate)
    validate.ident(member_id, "member_id")
    validate.text(evidence, "evidence", required=True, max_len=500)
    at = validate.event_time(observed_at_ms, "observed_at_ms") if observed_at_ms else now_ms()
    with storage.transaction("link plate") as conn:
        sqldb.member_site(conn, member_id)
        conn.execute("INSERT OR REPLACE INTO plates (plate, member_id, evidence, observed_at_ms) VALUES (?, ?, ?, ?)",
                     (p, member_id, evidence, at))
    return {"plate": p, "member_id": member_id, "evidence": evidence, "observed_at_ms": at}


def record_parking(storage: Storage, plate: str, site_id: str, bay: str, entered: bool, at_ms: int = 0) -> dict[str, Any]:
    """A car entered a bay (or left the car park)."""
    p = _plate(plate)
    validate.ident(site_id, "site_id")
    if entered:
        validate.ident(bay, "bay")
    at = validate.event_time(at_ms, "at_ms") if at_ms else now_ms()
    with storage.transaction("record parking") as conn:
        if conn.execute("SELECT 1 FROM sites WHERE site_id = ?", (site_id,)).fetchone() is None:
            raise NotFoundError(f"site {site_id!r} does not exist")
        if entered:
            conn.execute("INSERT OR REPLACE INTO parking (plate, site_id, bay, entered_at_ms) VALUES (?, ?, ?, ?)",
                         (p, site_id, bay, at))
        else:
            conn.execute("DELETE FROM parking WHERE plate = ?", (p,))
    return {"plate": p, "site_id": site_id, "bay": bay, "entered": entered, "at_ms": at}


def find_car(storage: Storage, id_type: int, id_value: str, site_id: str = "") -> dict[str, Any]:
    """Resolve an identity to its member and list where the member's cars are parked.

    With `site_id` (a device asking): a member of another site is NotFound, and only cars parked at
    that site are listed."""
    member_id = resolve(storage, id_type, id_value)["member_id"]
    with storage.transaction("find car", write=False) as conn:
        if site_id and sqldb.member_site(conn, member_id) != site_id:
            raise NotFoundError(f"no member {member_id!r} at site {site_id!r}")
        owners = [member_id] + [r[0] for r in conn.execute(
            "SELECT absorbed_id FROM member_merges WHERE kept_id = ?", (member_id,))]
        marks = ",".join("?" * len(owners))
        cars = conn.execute(
            f"SELECT k.plate, k.site_id, k.bay, k.entered_at_ms FROM plates p JOIN parking k ON k.plate = p.plate"
            f" WHERE p.member_id IN ({marks}) ORDER BY k.entered_at_ms DESC", owners,
        ).fetchall()
    if site_id:
        cars = [c for c in cars if c["site_id"] == site_id]
    return {"member_id": member_id, "cars": [dict(c) for c in cars]}
