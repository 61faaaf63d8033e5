"""The enrollment flow on its own, with the real models: a presentation attack and wrong codes never enroll."""

from __future__ import annotations

import random

import pytest

from device.gallery import Gallery
from device.identity import Identifier
from device.mirror.enrollment import CONSENT_VERSION, EnrollmentFlow
from sync.outbox import Outbox
from tests.mirror.conftest import NEW_MEMBER, head_turn_frames, qr_frame, spoof_frames


@pytest.mark.usefixtures("fast_flows")
def test_printed_photo_fails_liveness_and_nothing_is_recorded(mirror_device, mirror_cloud, models, shared_data):
    """GIVEN a member at the consent step WHEN a printed photo is held up THEN the challenge times out,
    the step is "failed" with the reason, and no template reaches the outbox; a retry with a live
    (moving) face then enrolls."""
    daemon = mirror_device("mirror-s")
    daemon.sync_once()
    outbox = Outbox(daemon.replica)
    flow = EnrollmentFlow(replica=daemon.replica, outbox=outbox, detector=models["detector"],
                          landmarker=models["landmarker"], embedder=models["embedder"],
                          identifier=Identifier(Gallery(), threshold=0.93, min_margin=0.02), rng=random.Random(1),
                          member_codes=mirror_cloud.verifier(db_path=daemon.replica.path))
    flow.start()
    assert not flow.on_code("6901234567892") and flow.step == "scan" and flow.view()["message"] == "无效的会员码"
    assert not flow.on_code("JOYMEMBER:" + NEW_MEMBER) and flow.step == "scan"  # legacy static code: off
    code = mirror_cloud.mint(NEW_MEMBER)
    assert flow.feed(qr_frame(code), 0.0) and flow.step == "consent"
    flow.agree("face-consent-v0")  # an outdated text is not consent
    assert flow.step == "consent"
    flow.agree(CONSENT_VERSION)
    assert flow.step == "capture"
    t = 0.0
    photo = spoof_frames(shared_data)[0]
    while flow.step == "capture" and t < 60:
        flow.feed(photo, t)
        t += 0.25
    assert flow.step == "failed" and "活体" in flow.view()["message"]
    assert [e.WhichOneof("payload") for e in outbox.pending()] == []
    flow.retry()
    for i, frame in enumerate(head_turn_frames(shared_data) * 2):
        if flow.step != "capture":
            break
        flow.feed(frame, 100 + i * 0.08)
    assert flow.step == "done", flow.view()
    [event] = outbox.pending()
    assert event.enrollment.member_id == NEW_MEMBER and event.enrollment.consent_text_version == CONSENT_VERSION
    assert len(event.enrollment.vector) == 128 * 4
    # The code goes with the template, so the cloud can check it again (and spend it for every device).
    assert event.enrollment.member_code == code
    assert 0 < event.enrollment.member_code_scanned_at_ms <= event.occurred_at_ms


def _enroll(daemon, mirror_cloud, models, shared_data, identifier) -> EnrollmentFlow:
    """One enrollment of NEW_MEMBER with the head-turn clip (the same frames and challenge every time)."""
    flow = EnrollmentFlow(replica=daemon.replica, outbox=Outbox(daemon.replica), detector=models["detector"],
                          landmarker=models["landmarker"], embedder=models["embedder"], identifier=identifier,
                          rng=random.Random(1), member_codes=mirror_cloud.verifier(db_path=daemon.replica.path))
    flow.start()
    assert flow.feed(qr_frame(mirror_cloud.mint(NEW_MEMBER)), 0.0) and flow.step == "consent"
    flow.agree(CONSENT_VERSION)
    for i, frame in enumerate(head_turn_frames(shared_data) * 2):
        if flow.step != "capture":
            break
        flow.feed(frame, 100 + i * 0.08)
    return flow


@pytest.mark.usefixtures("fast_flows")
def test_a_look_alike_is_a_clash_only_when_the_mirror_would_greet_it(mirror_device, mirror_cloud, models, shared_data):
    """A face that matches another member on the face alone is refused ("already bound to another member").
    At a large site many newcomers clear the calibrated 0.93 against somebody by chance (device/open_set.py);
    refusing them all would send a third of the enrollments at 1,000 members to the service desk, so the
    bar is the gallery's greeting threshold."""
    import numpy as np

    from device.config import IdentityConfig
    from tests.device.vectors import near

    daemon = mirror_device("mirror-clash")
    daemon.sync_once()

    def identifier(rows):
        gallery = Gallery(scan_min_rows=None)
        gallery.load(rows)
        return Identifier.from_config(gallery, IdentityConfig())

    first = _enroll(daemon, mirror_cloud, models, shared_data, identifier([]))
    assert first.step == "done", first.view()
    outbox = Outbox(daemon.replica)
    events = outbox.pending()
    template = np.frombuffer(events[-1].enrollment.vector, dtype="<f4")
    look_alike = near(template, 0.95, seed=3)  # another member, 0.95 like her: above 0.93, far under 0.99
    with daemon.replica.transaction() as conn:  # forget the first enrollment's event: the next ones are compared
        conn.execute("DELETE FROM outbox")

    small = identifier([("other-member", look_alike, 1.0)])
    refused = _enroll(daemon, mirror_cloud, models, shared_data, small)
    assert refused.step == "failed" and "已绑定其他会员" in refused.view()["message"]
    assert outbox.pending() == []

    rng = np.random.default_rng(4)
    padding = [(f"pad-{i}", v, 1.0) for i, v in enumerate(rng.normal(size=(3_000, 128)))]
    large = identifier([("other-member", look_alike, 1.0), *padding])
    decision = large.decide(template)
    assert decision.member_id == "other-member" and decision.confirm  # the precondition, measured
    done = _enroll(daemon, mirror_cloud, models, shared_data, large)
    assert done.step == "done", done.view()
    assert [e.enrollment.member_id for e in outbox.pending()] == [NEW_MEMBER]
