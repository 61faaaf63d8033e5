"""Cold sync through Sync.Snapshot: a real cloud on loopback, real replica files, real pages.

A snapshot is applied in one transaction: a stream cut midway, or a page that breaks the protocol,
leaves the replica exactly as it was; Pull continues from the snapshot's seq, so changes made while
the snapshot was taken still arrive; a cloud that cannot serve the device's cursors asks for one."""

from __future__ import annotations

import pytest

from api.v1 import sync_pb2
from sync.errors import ReplicaError
from sync.snapshot import apply_snapshot
from tests.sync.conftest import SITE, STORE, vector


def _pages(daemon, page_rows: int = 2) -> list[sync_pb2.SnapshotPage]:
    request = sync_pb2.SnapshotRequest(device_id="dev-1", site_id=SITE, store_id=STORE, page_rows=page_rows)
    return list(daemon.client.snapshot(request))


def _state(replica) -> dict:
    with replica._lock:
        conn = replica._conn
        return {t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1")]
                for t in ("members", "tags", "coupons", "cursors")} | {
            "templates": [(t.template_id, t.member_id, t.vector.tobytes()) for t in replica.templates()]}


def test_cold_device_takes_a_snapshot_then_pulls_deltas(cloud, device) -> None:
    daemon = device()
    assert not daemon.replica.has_cursors()
    applied = daemon.pull_once()
    assert applied == {"members": 5, "tags": 0, "templates": 5, "coupons": 5}
    head = cloud.storage.head_seq()
    assert set(daemon.replica.cursors().values()) == {head}
    templates = {t.template_id: t.vector.tobytes() for t in daemon.replica.templates()}
    assert templates == {f"M{i}-t1": vector(i) for i in range(1, 6)}  # sealed on the device, opened again
    assert daemon.replica.member("X1") is None  # another site's member never arrives
    # Then deltas: a change after the snapshot comes through Pull.
    cloud.storage.upsert_member(member_id="M1", site_id=SITE, name="改名")
    assert daemon.pull_once()["members"] == 1
    assert daemon.replica.member("M1")["name"] == "改名"


def test_stream_cut_midway_changes_nothing(cloud, device) -> None:
    daemon = device()
    pages = _pages(daemon)
    assert len(pages) > 4 and pages[-1].done and not any(p.done for p in pages[:-1])
    before = _state(daemon.replica)
    for cut in (1, len(pages) // 2, len(pages) - 1):
        with pytest.raises(ReplicaError, match="ended before its last page"):
            apply_snapshot(daemon.replica, pages[:cut])
        assert _state(daemon.replica) == before
        assert not daemon.replica.has_cursors()  # still a cold replica: the next round snapshots again
    apply_snapshot(daemon.replica, pages)
    assert daemon.replica.counts() == {"members": 5, "tags": 0, "templates": 5, "coupons": 5}


def test_pages_that_break_the_protocol_are_refused_whole(cloud, device) -> None:
    daemon = device()
    daemon.pull_once()
    before = _state(daemon.replica)
    pages = _pages(daemon)
    mixed = [sync_pb2.SnapshotPage() for _ in pages]
    for src, dst in zip(pages, mixed, strict=True):
        dst.CopyFrom(src)
    mixed[-1].snapshot_seq += 1
    short = [sync_pb2.SnapshotPage() for _ in pages]
    for src, dst in zip(pages, short, strict=True):
        dst.CopyFrom(src)
    first_rows = next(p for p in short if p.rows)
    first_rows.rows += 1  # a column no longer has `rows` values
    missing = [p for p in pages if p.stream != sync_pb2.STREAM_COUPONS]
    missing[-1].done = True
    for bad, why in ((mixed, "mixes seqs"), (short, "does not have"), (missing, "lacks streams")):
        with pytest.raises(ReplicaError, match=why):
            apply_snapshot(daemon.replica, bad)
        assert _state(daemon.replica) == before


def test_changes_made_during_the_snapshot_follow_through_pull(cloud, device) -> None:
    daemon = device()
    pages = _pages(daemon)  # the cloud's read transaction is over: everything below is "during"
    cloud.storage.delete_member("M2")
    cloud.storage.upsert_member(member_id="M9", site_id=SITE, name="新会员")
    apply_snapshot(daemon.replica, pages)
    assert daemon.replica.member("M2") is not None  # as of the snapshot
    daemon.pull_once()
    assert daemon.replica.member("M2") is None and daemon.replica.member("M9")["name"] == "新会员"
    assert "M2-t1" not in {t.template_id for t in daemon.replica.templates()}


def test_cursors_beyond_the_clouds_head_get_a_snapshot(cloud, device) -> None:
    """The cloud was restored from a backup: its head is behind the device's cursors."""
    daemon = device()
    daemon.pull_once()
    rev = daemon.replica.template_rev()
    with daemon.replica.transaction() as conn:
        conn.execute("UPDATE cursors SET seq = seq + 1000")
        conn.execute("INSERT INTO members (member_id, name, tier, points, tier_keep_points, phone_last4, gender,"
                     " birthday, site_id, updated_at_ms) VALUES ('GONE', 'x', '', 0, 0, '', '', '', ?, 0)", (SITE,))
    applied = daemon.pull_once()
    assert applied["members"] == 5
    assert daemon.replica.member("GONE") is None
    assert set(daemon.replica.cursors().values()) == {cloud.storage.head_seq()}
    # The app's gallery sees a new revision with every template (it reloads incrementally).
    new_rev, rows, _gone = daemon.replica.template_changes(rev)
    assert new_rev > rev and {r.template_id for r in rows} == {f"M{i}-t1" for i in range(1, 6)}


def _app(daemon):
    """The app's own connection to the daemon's replica file (as the app process has)."""
    from sync.replica import Replica

    return Replica(daemon.replica.path, daemon.replica.cipher)


def test_readers_see_the_old_replica_until_the_swap_and_app_writes_go_between_pages(cloud, device) -> None:
    """GIVEN a cold replica, WHEN the snapshot is applied page by page, THEN between pages the app reads
    the replica as before (no rows, no cursors) and its outbox writes commit at once; after the last page
    everything is there, with the app's events kept."""
    daemon = device()
    app = _app(daemon)
    try:
        from sync.outbox import Outbox

        outbox = Outbox(app)
        seen = []

        def watched():
            for page in _pages(daemon):
                seen.append((app.counts(), app.has_cursors()))
                outbox.visit("M1", STORE, 0.9)  # would wait for the whole snapshot if it held the lock
                yield page

        apply_snapshot(daemon.replica, watched())
        empty = {"members": 0, "tags": 0, "templates": 0, "coupons": 0}
        assert len(seen) > 4 and all(s == (empty, False) for s in seen)
        assert app.counts() == {"members": 5, "tags": 0, "templates": 5, "coupons": 5} and app.has_cursors()
        assert outbox.depth() == len(seen)
        with app._lock:  # nothing of the staging is left behind
            names = {r[0] for r in app._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert not {n for n in names if n.startswith(("snap_", "snapold_"))}
    finally:
        app.close()


def test_a_withdrawal_during_the_snapshot_does_not_hide_the_snapshot_from_the_gallery(cloud, device) -> None:
    """GIVEN a synced replica, WHEN a new snapshot is staged while the app takes a revision of its own (a
    consent withdrawal, after which its gallery reloads to that revision), THEN after the swap the app's
    incremental reload from that revision still gets every snapshot template: staged rows carry a revision
    above anything taken during staging."""
    daemon = device()
    daemon.pull_once()
    app = _app(daemon)
    try:
        gallery_rev = [app.template_rev()]

        def during():
            for i, page in enumerate(_pages(daemon)):
                if i == 1:
                    with app.transaction() as conn:
                        assert app.delete_member_templates(conn, "M1") == 1
                    rev, _rows, gone = app.template_changes(gallery_rev[0])
                    assert gone == ["M1-t1"]
                    gallery_rev[0] = rev
                yield page

        apply_snapshot(daemon.replica, during())
        rev, rows, _gone = app.template_changes(gallery_rev[0])
        assert rev > gallery_rev[0]
        assert {r.template_id for r in rows} == {f"M{i}-t1" for i in range(1, 6)}  # M1 back from the cloud
    finally:
        app.close()


def test_a_second_snapshot_takes_over_and_the_first_stops_without_changing_anything(cloud, device) -> None:
    """Two `joyedge sync` processes snapshot one replica at once: the later one wins, the earlier one
    stops at its next page with a clear error; the replica is the later snapshot, whole."""
    first, second = device(), device()
    cloud.storage.upsert_member(member_id="M9", site_id=SITE, name="新会员")
    pages = _pages(first)

    def interrupted():
        for i, page in enumerate(pages):
            if i == 2:
                apply_snapshot(second.replica, _pages(second))
            yield page

    with pytest.raises(ReplicaError, match="another snapshot"):
        apply_snapshot(first.replica, interrupted())
    assert first.replica.counts() == {"members": 6, "tags": 0, "templates": 5, "coupons": 5}
    assert set(first.replica.cursors().values()) == {cloud.storage.head_seq()}
