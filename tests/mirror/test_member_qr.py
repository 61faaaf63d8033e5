"""The dynamic membership QR: minted by the real cloud (its CLI and key files), keys fetched over gRPC on
loopback, verified by the device offline. Every way a code must be refused, and the shopper's message."""

from __future__ import annotations

import base64
import logging
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api import member_qr as fmt
from cloud_stub import cli as cloud_cli
from cloud_stub.member_qr import MemberQrKeys, key_dir_for
from cloud_stub.storage import SqliteStorage
from device.mirror import member_qr as mqr
from device.mirror.member_qr import EXPIRED, INVALID, OTHER_SITE, KeyRing, MemberCodeRejected, NonceLedger
from tests.mirror.conftest import NEW_MEMBER

OTHER_SITE_ID, OTHER_MEMBER = "site-far", "M-far-01"


@pytest.fixture(scope="module")
def other_site_member(mirror_cloud) -> str:
    """A member of another mall on the same cloud (so with that site's own key)."""
    storage = SqliteStorage(mirror_cloud.db)
    storage.upsert_site(OTHER_SITE_ID, "another mall")
    storage.upsert_member(member_id=OTHER_MEMBER, site_id=OTHER_SITE_ID, name="赵六")
    return OTHER_MEMBER


def _refusal(verifier, code: str) -> MemberCodeRejected:
    with pytest.raises(MemberCodeRejected) as info:
        verifier.consume(verifier.verify(code))
    return info.value


def _resign(code: str, key: Ed25519PrivateKey, **change) -> str:
    """The token of `code` with fields changed, signed by `key` (keeping the original key id)."""
    token, _message, _sig = fmt.decode(code)
    fields = {**token.__dict__, **change}
    return fmt.encode(fmt.MemberToken(**fields), key.sign)


def test_valid_code_once_then_replay_refused(mirror_cloud, tmp_path):
    """GIVEN a fresh code WHEN it is scanned THEN it names the member; scanned again at this device (even after
    an app restart: the nonce is in the replica file) it is refused as spent."""
    verifier = mirror_cloud.verifier(db_path=tmp_path / "replica.db")
    code = mirror_cloud.mint(NEW_MEMBER)
    assert code.startswith("JM1.") and len(code) < 200  # small enough for a phone screen at arm's length
    verified = verifier.verify(code)
    assert verifier.member_id(verified) == NEW_MEMBER
    verifier.consume(verified)
    again = _refusal(verifier, code)
    assert again.reason == "replayed" and again.message == EXPIRED
    restarted = mirror_cloud.verifier(db_path=tmp_path / "replica.db")
    assert _refusal(restarted, code).reason == "replayed"
    assert restarted.member_id(restarted.verify(mirror_cloud.mint(NEW_MEMBER))) == NEW_MEMBER  # a new code works


def test_expired_and_skew(mirror_cloud):
    verifier = mirror_cloud.verifier()
    now = time.time()
    late = _refusal(verifier, mirror_cloud.mint(NEW_MEMBER, ttl_s=60, now=now - 60 - fmt.CLOCK_SKEW_S - 5))
    assert late.reason == "expired" and late.message == ("二维码已过期，请刷新小程序后重试", EXPIRED[1])
    # Within the clock-skew slack a just-expired code (or one from a phone a little ahead) still works.
    assert verifier.verify(mirror_cloud.mint(NEW_MEMBER, ttl_s=60, now=now - 60 - fmt.CLOCK_SKEW_S + 5))
    assert verifier.verify(mirror_cloud.mint(NEW_MEMBER, ttl_s=60, now=now + fmt.CLOCK_SKEW_S - 5))
    future = _refusal(verifier, mirror_cloud.mint(NEW_MEMBER, ttl_s=60, now=now + fmt.CLOCK_SKEW_S + 60))
    assert future.reason == "not_yet_valid"


def test_lifetime_over_the_limit_is_refused_even_if_signed(mirror_cloud):
    """A signing-key holder cannot hand out long-lived codes: the device caps the lifetime at MAX_TTL_S."""
    key = MemberQrKeys(key_dir_for(mirror_cloud.db)).signing_key(mirror_cloud.site_id)
    long_lived = _resign(mirror_cloud.mint(NEW_MEMBER), key, ttl_s=3600)
    assert _refusal(mirror_cloud.verifier(), long_lived).reason == "ttl"
    with pytest.raises(Exception, match="--ttl must be 1-120"):
        mirror_cloud.mint(NEW_MEMBER, ttl_s=600)


def test_forged_signature_and_tampered_fields(mirror_cloud):
    verifier = mirror_cloud.verifier()
    code = mirror_cloud.mint(NEW_MEMBER)
    # Someone who knows a member id changes the member in a valid code (or signs with a key of their own).
    swapped = _resign(code, Ed25519PrivateKey.generate(), member_id=mirror_cloud.hopper)
    err = _refusal(verifier, swapped)
    assert err.reason == "signature" and err.message == INVALID and err.message[0] == "无效的会员码"
    raw = bytearray(base64.urlsafe_b64decode(code[4:] + "=" * (-len(code[4:]) % 4)))
    raw[-70] ^= 0x01  # one bit of the member id
    flipped = "JM1." + base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert _refusal(verifier, flipped).reason in ("signature", "format")
    assert verifier.member_id(verifier.verify(code)) == NEW_MEMBER  # the original is still fine


def test_other_sites_code_and_key(mirror_cloud, other_site_member):
    """GIVEN two malls on one cloud, each with its own key WHEN this mall's device sees the other's code THEN
    "非本商场会员码"; a code claiming this mall but signed with the other mall's key is invalid."""
    verifier = mirror_cloud.verifier()
    theirs = mirror_cloud.mint(other_site_member)
    err = _refusal(verifier, theirs)
    assert err.reason == "site" and err.message == OTHER_SITE and err.message[0] == "非本商场会员码"
    their_key = MemberQrKeys(key_dir_for(mirror_cloud.db)).signing_key(OTHER_SITE_ID)
    posing = _resign(theirs, their_key, site_id=mirror_cloud.site_id, member_id=NEW_MEMBER)
    err = _refusal(verifier, posing)
    assert err.reason == "unknown_key" and err.message == INVALID
    # The other mall's own device accepts its code: the keys really are per site.
    assert mirror_cloud.verifier(site_id=OTHER_SITE_ID).verify(theirs)


@pytest.mark.parametrize("code", [
    "", "JM1.", "JM1.!!!!", "JM1." + "A" * 40, "JM1." + "A" * 400, "JM2.AAAA", "https://e.joycloud.example/r/1",
    "6901234567892", "JOYMEMBER:M-new-01", "\x00JM1.", "JM1.\u6c49\u5b57",
])
def test_garbage_and_legacy_refused_when_off(mirror_cloud, code, caplog):
    verifier = mirror_cloud.verifier()
    with caplog.at_level(logging.INFO):
        err = _refusal(verifier, code)
    assert err.message == INVALID
    assert NEW_MEMBER not in str(err)


def test_truncated_codes(mirror_cloud):
    verifier = mirror_cloud.verifier()
    code = mirror_cloud.mint(NEW_MEMBER)
    for cut in (5, 20, 60, 100, len(code) - 1):
        assert _refusal(verifier, code[:cut]).message == INVALID, cut


def test_legacy_static_code_only_when_enabled(mirror_cloud, caplog):
    assert _refusal(mirror_cloud.verifier(), "JOYMEMBER:" + NEW_MEMBER).reason == "legacy"
    legacy = mirror_cloud.verifier(accept_legacy=True)
    with caplog.at_level(logging.WARNING):
        assert legacy.member_id(legacy.verify("JOYMEMBER:" + NEW_MEMBER)) == NEW_MEMBER
    assert "INSECURE" in caplog.text and NEW_MEMBER not in caplog.text
    assert legacy.verify(mirror_cloud.mint(NEW_MEMBER))  # signed codes still work beside it


def test_keys_cached_for_offline_and_refreshed_on_unknown_key(mirror_cloud, tmp_path, monkeypatch):
    """GIVEN a device that fetched its site's keys once WHEN the cloud is unreachable THEN codes are still
    verified from the cache; a code of an unknown key triggers one refresh (rate-limited) and then works."""
    cache = tmp_path / mqr.KEYS_FILE
    online = KeyRing(mirror_cloud.site_id, cache, mqr.KeyFetcher(mirror_cloud.address, mirror_cloud.site_id,
                                                                 insecure=True))
    assert online.refresh() and cache.exists()

    def unreachable():
        raise mqr.DeviceError("cloud unreachable")

    offline = mqr.MemberCodeVerifier(mirror_cloud.site_id, KeyRing(mirror_cloud.site_id, cache, unreachable),
                                     NonceLedger())
    assert offline.member_id(offline.verify(mirror_cloud.mint(NEW_MEMBER))) == NEW_MEMBER

    calls = []

    def counting():
        calls.append(1)
        return mqr.KeyFetcher(mirror_cloud.address, mirror_cloud.site_id, insecure=True)()

    empty = mqr.MemberCodeVerifier(mirror_cloud.site_id, KeyRing(mirror_cloud.site_id, None, counting), NonceLedger())
    empty.keys._fetched_at = empty.keys.clock()  # pretend it is fresh, so only the unknown key asks the cloud
    assert empty.member_id(empty.verify(mirror_cloud.mint(NEW_MEMBER))) == NEW_MEMBER and len(calls) == 1
    stranger = _resign(mirror_cloud.mint(NEW_MEMBER), Ed25519PrivateKey.generate(),
                       key_id=b"\x01" * fmt.KEY_ID_BYTES)
    for _ in range(5):  # junk codes do not hammer the cloud
        assert _refusal(empty, stranger).reason == "unknown_key"
    assert len(calls) == 1


def test_a_failed_key_fetch_is_retried_soon_not_after_a_minute(mirror_cloud):
    """GIVEN a mirror whose first key fetch failed (cloud slow at boot) WHEN a member shows a code a few
    seconds later THEN the keys are fetched again and the code works; a successful fetch still rate-limits."""
    now = [1000.0]
    outcomes = ["fail", "ok"]

    def flaky():
        if outcomes.pop(0) == "fail":
            raise mqr.DeviceError("deadline exceeded")
        return mqr.KeyFetcher(mirror_cloud.address, mirror_cloud.site_id, insecure=True)()

    ring = KeyRing(mirror_cloud.site_id, None, flaky, clock=lambda: now[0])
    assert not ring.refresh() and ring.keys() == {}
    verifier = mqr.MemberCodeVerifier(mirror_cloud.site_id, ring, NonceLedger())
    assert _refusal(verifier, mirror_cloud.mint(NEW_MEMBER)).reason == "unknown_key"  # too soon to ask again
    now[0] += mqr.RETRY_AFTER_FAILURE_S + 0.1
    assert verifier.member_id(verifier.verify(mirror_cloud.mint(NEW_MEMBER))) == NEW_MEMBER
    assert outcomes == []


def test_cli_mints_a_token_and_a_png(mirror_cloud, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from drivers.scanner.camera import decode_image

    png = tmp_path / "qr.png"
    assert cloud_cli.main(["member", "qr", NEW_MEMBER, "--db", str(mirror_cloud.db), "--ttl", "60",
                           "--png", str(png)]) == 0
    token = capsys.readouterr().out.strip()
    verifier = mirror_cloud.verifier()
    parsed = verifier.verify(token)
    assert parsed.member_id == NEW_MEMBER and parsed.ttl_s == 60
    assert decode_image(np.asarray(Image.open(png).convert("RGB"))) == [token]
    assert cloud_cli.main(["member", "qr", "M-nobody", "--db", str(mirror_cloud.db)]) == 2
    assert cloud_cli.main(["member", "qr", NEW_MEMBER, "--db", str(mirror_cloud.db), "--ttl", "3600"]) == 2
    err = capsys.readouterr().err
    assert "joyedge-cloud: error:" in err and "Traceback" not in err
