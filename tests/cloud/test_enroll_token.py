"""The cloud checks the membership QR again when an enrollment is pushed (cloud_stub/member_qr.check_enrollment).

Real parts: a cloud with its own CA serving mTLS on loopback, mirrors enrolled with claim tokens (their site
comes from the certificate), each with its own replica file, outbox and sync daemon, and the mirror's own
member-QR verifier (keys fetched over mTLS, nonces in the replica). A "compromised mirror" is a device that
writes an enrollment into its outbox without the verifier, as one with a stolen mTLS key could.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from api import member_qr as fmt
from api.v1 import sync_pb2
from cloud_stub import ca, cli, member_qr, registry
from cloud_stub.member_qr import MemberQrKeys, key_dir_for
from cloud_stub.server import CloudServer, start_server
from cloud_stub.storage import SqliteStorage
from device.mirror.member_qr import KeyFetcher, KeyRing, MemberCodeVerifier, NonceLedger
from sync.client import SyncClient
from sync.crypto import TemplateCipher
from sync.daemon import SyncDaemon
from sync.identity import DeviceIdentity, enroll
from sync.outbox import Outbox
from sync.replica import Replica

CONSENT = "face-consent-v1"


def _vector(seed: int) -> bytes:
    v = np.random.default_rng(seed).normal(size=128).astype("<f4")
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


@dataclass
class Mirror:
    name: str
    ident: DeviceIdentity
    replica: Replica
    daemon: SyncDaemon

    def verifier(self, clock: Callable[[], float] = time.time) -> MemberCodeVerifier:
        """The mirror's own check (keys over its mTLS channel, nonces in its replica file)."""
        fetch = KeyFetcher(self.ident.sync_target, self.ident.site_id, credentials=self.ident.channel_credentials(),
                           options=self.ident.channel_options())
        ring = KeyRing(self.ident.site_id, fetch=fetch)
        ring.refresh()
        return MemberCodeVerifier(self.ident.site_id, ring, NonceLedger(self.replica.path), clock=clock)

    def record(self, member_id: str, code: str, *, scanned_s: float | None = None, captured_s: float | None = None,
               seed: int = 1) -> tuple[str, str]:
        """An enrollment in the outbox as the flow writes it: (event id, template id)."""
        scanned = time.time() if scanned_s is None else scanned_s
        captured = scanned + 40 if captured_s is None else captured_s
        template_id = f"tpl-{uuid.uuid4()}"
        event_id = Outbox(self.replica, clock=lambda: captured).enrollment(
            member_id, f"consent-{uuid.uuid4()}", template_id, "dlib_resnet_v1", _vector(seed),
            consent_text_version=CONSENT, member_code=code, code_scanned_at_ms=int(scanned * 1000) if code else 0)
        return event_id, template_id

    def scan_and_record(self, member_id: str, code: str, *, clock: Callable[[], float] = time.time,
                        **kw: float) -> tuple[str, str]:
        """The honest path: the mirror's verifier accepts and spends the code here, then the template is recorded."""
        verifier = self.verifier(clock)
        verified = verifier.verify(code)
        assert verifier.member_id(verified) == member_id
        verifier.consume(verified)
        return self.record(member_id, code, scanned_s=clock(), **kw)

    def quarantined(self) -> dict[str, str]:
        return {r["event_id"]: r["reason"] for r in self.daemon.outbox.quarantined()}


@dataclass
class World:
    db: Path
    storage: SqliteStorage
    server: CloudServer
    mirror: Callable[[str, str], Mirror]

    def mint(self, member_id: str, *, now: float | None = None, ttl_s: int = 90) -> str:
        return MemberQrKeys(key_dir_for(self.db)).mint(self.storage, member_id, ttl_s=ttl_s, now=now)

    def count(self, sql: str, *args: object) -> int:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            return int(conn.execute(sql, args).fetchone()[0])
        finally:
            conn.close()

    def template(self, template_id: str) -> int:
        return self.count("SELECT count(*) FROM templates WHERE template_id = ?", template_id)

    def consents(self, member_id: str) -> int:
        return self.count("SELECT count(*) FROM consents WHERE member_id = ?", member_id)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """GIVEN malls a and b on one mTLS cloud; members a-m1, a-m2 (site a) and b-m1 (site b), none enrolled."""
    ca_dir = ca.init_ca(tmp_path / "ca").dir
    db = tmp_path / "cloud.db"
    storage = SqliteStorage(db)
    for site in ("a", "b"):
        storage.upsert_site(site, f"site {site}")
        storage.upsert_store(f"{site}-s1", site, "store 1")
    for mid, site in (("a-m1", "a"), ("a-m2", "a"), ("b-m1", "b")):
        storage.upsert_member(member_id=mid, site_id=site, name="王建", points=100)
    made: list[tuple[Replica, SyncClient]] = []
    with start_server(db, host="127.0.0.1", port=0, storage=storage, tls_dir=ca_dir) as server:
        def mirror(name: str, site: str) -> Mirror:
            token = registry.create_claim_token(storage, site_id=site, store_id=f"{site}-s1", profile="mirror")
            ident = enroll(tmp_path / name / "identity", f"127.0.0.1:{server.enroll_port}", token["token"],
                           ca_pem=(ca_dir / "ca.pem").read_bytes(), device_id=name)
            replica = Replica(tmp_path / name / "replica.db", TemplateCipher(tmp_path / name / "keys"))
            client = SyncClient(ident.sync_target, credentials=ident.channel_credentials(),
                                options=ident.channel_options())
            made.append((replica, client))
            daemon = SyncDaemon(replica, client, device_id=ident.device_id, site_id=ident.site_id,
                                store_id=ident.store_id)
            return Mirror(name, ident, replica, daemon)

        yield World(db, storage, server, mirror)
        for replica, client in made:
            client.close()
            replica.close()


def test_a_code_replayed_at_a_second_mirror_is_refused_by_the_cloud_and_the_first_enrollment_kept(world):
    """GIVEN one code scanned at mirror A1 and (photographed) again at mirror A2, which both accept it
    locally WHEN both push THEN the cloud keeps A1's template and consent and refuses A2's: no template,
    no consent, quarantined with the reason, a compensation A2 keeps, an operator record; A2's replica
    never gets its template; pushing either event again changes nothing."""
    a1, a2 = world.mirror("mir-a1", "a"), world.mirror("mir-a2", "a")
    code = world.mint("a-m1")
    _, tpl1 = a1.scan_and_record("a-m1", code, seed=1)
    ev2, tpl2 = a2.scan_and_record("a-m1", code, seed=2)  # single use is per device: A2 accepts it too
    [sent1], [sent2] = a1.daemon.outbox.pending(), a2.daemon.outbox.pending()
    assert sent2.enrollment.member_code == code and sent2.enrollment.member_code_scanned_at_ms > 0
    assert a1.daemon.push_once()["accepted"] == 1
    totals = a2.daemon.push_once()
    assert totals["rejected"] == 1 and totals["compensations"] == 1
    assert "replayed" in a2.quarantined()[ev2]
    [comp] = a2.daemon.outbox.compensations()
    assert comp["kind"] == member_qr.REFUSAL_KIND and comp["cause_event_id"] == ev2 and comp["member_id"] == "a-m1"
    assert (world.template(tpl1), world.template(tpl2)) == (1, 0)
    assert world.consents("a-m1") == 1  # A1's consent only
    [refusal] = member_qr.refusals(world.storage, site_id="a")
    assert (refusal["event_id"], refusal["device_id"], refusal["reason"]) == (ev2, "mir-a2", "replayed")
    # A2's replica: the member's template is A1's (from the cloud), never the one A2 took.
    a2.daemon.pull_once()
    assert {t.template_id for t in a2.replica.templates() if t.member_id == "a-m1"} == {tpl1}
    # Idempotent re-push (as after a lost ack): the same answers, nothing new in the cloud.
    before = [world.count(f"SELECT count(*) FROM {t}") for t in ("templates", "consents", "compensations",
                                                                 "member_qr_refusals", "member_qr_spent")]
    again2 = _push_again(a2, sent2)
    assert [a.status for a in again2.acks] == [sync_pb2.ACK_STATUS_REJECTED] and "replayed" in again2.acks[0].reason
    assert [c.compensation_id for c in again2.compensations] == [comp["compensation_id"]]
    assert [a.status for a in _push_again(a1, sent1).acks] == [sync_pb2.ACK_STATUS_DUPLICATE]
    assert before == [world.count(f"SELECT count(*) FROM {t}") for t in (
        "templates", "consents", "compensations", "member_qr_refusals", "member_qr_spent")] == [1, 1, 1, 1, 1]


def _push_again(mirror: Mirror, event: sync_pb2.DeviceEvent) -> sync_pb2.PushResponse:
    return mirror.daemon.client.push(sync_pb2.PushRequest(
        device_id=mirror.ident.device_id, site_id=mirror.ident.site_id, events=[event],
        device_time_ms=int(time.time() * 1000)))
def _refused(mirror: Mirror, event_id: str, reason: str) -> None:
    """The cloud refused `event_id`: quarantined with `reason`, a compensation for it, no template from it."""
    totals = mirror.daemon.push_once()
    assert totals["rejected"] == 1, totals
    assert f"({reason})" in mirror.quarantined()[event_id], mirror.quarantined()
    assert event_id in {c["cause_event_id"] for c in mirror.daemon.outbox.compensations()}


def test_a_token_of_another_member_or_another_site_or_forged_is_refused(world):
    """GIVEN a compromised mirror of site a (valid certificate, writes its outbox itself) WHEN it enrolls a face
    onto a-m1 with a-m2's code, with a code of mall b (signed by b's key, or claiming site a but signed by b's
    key), or with a-m1's code whose signature it altered THEN every enrollment is refused and nothing of
    a-m1 is stored; the honest code of a-m1 then still works (none of the refusals spent it)."""
    bad = world.mirror("mir-bad", "a")
    keys = MemberQrKeys(key_dir_for(world.db))
    now = time.time()

    def signed_by(site_key: str, *, site: str, member: str) -> str:
        key = keys.signing_key(site_key)
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        pub = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return fmt.encode(fmt.MemberToken(member_id=member, site_id=site, issued_at=int(now), ttl_s=90,
                                          nonce=uuid.uuid4().bytes[:12], key_id=fmt.key_id(pub)), key.sign)

    honest = world.mint("a-m1")
    raw = bytearray(honest.encode())
    raw[-3] = ord("A") if raw[-3] != ord("A") else ord("B")  # flip a signature character
    cases = [
        (world.mint("a-m2"), "other_member"),
        (signed_by("b", site="b", member="a-m1"), "site"),
        (signed_by("b", site="a", member="a-m1"), "unknown_key"),
        (raw.decode(), "signature"),
        ("JM1.garbage", "format"),
    ]
    for code, reason in cases:
        event_id, tpl = bad.record("a-m1", code)
        _refused(bad, event_id, reason)
        assert world.template(tpl) == 0
    assert world.consents("a-m1") == 0 and world.count("SELECT count(*) FROM member_qr_spent") == 0
    assert sorted(r["reason"] for r in member_qr.refusals(world.storage)) == sorted(r for _, r in cases)
    _, tpl = bad.record("a-m1", honest)
    assert bad.daemon.push_once()["accepted"] == 1 and world.template(tpl) == 1


def test_validity_is_judged_at_the_scan_time_not_at_arrival(world):
    """GIVEN a mirror that was offline WHEN it pushes an enrollment whose code it scanned within validity 2 h
    ago THEN the cloud accepts it; a code scanned after its expiry, before its issue, or a capture long after
    the scan (all times as the device reports them) is refused; a code of 8 days ago too (too old to trust)."""
    m = world.mirror("mir-a1", "a")
    t0 = time.time() - 2 * 3600
    code = world.mint("a-m1", now=t0)
    _, tpl = m.scan_and_record("a-m1", code, clock=lambda: t0 + 20, captured_s=t0 + 80)
    assert m.daemon.push_once()["accepted"] == 1 and world.template(tpl) == 1

    t1 = time.time() - 3 * 3600
    late = world.mint("a-m2", now=t1, ttl_s=60)
    cases = [
        (late, t1 + 60 + fmt.CLOCK_SKEW_S + 5, None, "expired"),
        (world.mint("a-m2", now=t1), t1 - fmt.CLOCK_SKEW_S - 5, None, "not_yet_valid"),
        (world.mint("a-m2", now=t1), t1 + 10, t1 + 10 + member_qr.ENROLL_SESSION_MAX_MS / 1000 + 60, "session"),
        (world.mint("a-m2", now=t1), t1 + 10, t1 - 60, "session"),  # captured before it was scanned
        (world.mint("a-m2", now=time.time() - 8 * 86400), time.time() - 8 * 86400 + 5, None, "too_old"),
        (world.mint("a-m2"), time.time() + 3600, None, "future"),
    ]
    for code, scanned, captured, reason in cases:
        event_id, tpl = m.record("a-m2", code, scanned_s=scanned, captured_s=captured)
        _refused(m, event_id, reason)
        assert world.template(tpl) == 0
    assert world.consents("a-m2") == 0


def test_legacy_enrollments_without_a_token_only_where_the_site_allows_them(world, capsys):
    """GIVEN a device on legacy static codes (no token in its enrollments) WHEN its site does not allow legacy
    (the default) THEN the enrollment is refused; after the operator allows it for that site, accepted."""
    m = world.mirror("mir-old", "a")
    event_id, tpl = m.record("a-m1", "")
    _refused(m, event_id, "legacy_not_allowed")
    assert world.template(tpl) == 0 and not member_qr.legacy_allowed(world.storage, "a")
    # The operator sees the refusal and switches legacy on for this mall (joyedge-cloud).
    assert cli.main(["member", "qr-refusals", "--db", str(world.db), "--site-id", "a", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["event_id"], row["device_id"], row["reason"]) == (event_id, "mir-old", "legacy_not_allowed")
    assert cli.main(["member", "qr-legacy", "--db", str(world.db), "a", "on"]) == 0
    _, tpl = m.record("a-m1", "")
    assert m.daemon.push_once()["accepted"] == 1 and world.template(tpl) == 1
    assert not member_qr.legacy_allowed(world.storage, "b")  # per site
    with pytest.raises(member_qr.InvalidRequestError):
        member_qr.set_legacy_policy(world.storage, "no-such-site", True)


def test_the_nonce_is_spent_once_per_event_so_a_retry_after_a_crash_passes(world):
    """GIVEN the cloud spent a code's nonce for event E and died before acking WHEN E comes again THEN it
    passes (the nonce is E's own); any other event with that code is refused."""
    code = world.mint("a-m1")
    now_ms = int(time.time() * 1000)
    args = {"device_id": "mir-a1", "site_id": "a", "member_id": "a-m1", "code": code,
            "scanned_at_ms": now_ms - 30_000, "captured_at_ms": now_ms - 1000, "received_at_ms": now_ms}
    member_qr.check_enrollment(world.storage, event_id="e-1", **args)
    member_qr.check_enrollment(world.storage, event_id="e-1", **args)
    with pytest.raises(member_qr.EnrollmentRefused) as err:
        member_qr.check_enrollment(world.storage, event_id="e-2", **{**args, "device_id": "mir-a2"})
    assert err.value.reason == "replayed" and "mir-a1" in err.value.detail
