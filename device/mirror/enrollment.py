"""Consented face enrollment (and withdrawal) at the mirror; reusable by the π-POS.

Steps (the "enroll" view model's ``step``)::

    scan ──membership QR──► consent ──agree(version)──► capture ──liveness + 3 good frames──► done
      │                        │ decline / cancel            │ timeout, spoof, 2 faces       │
      └──── cancel ────────────┴──────► (back to the mirror)  └──────────► failed ──retry──► capture
                               └── withdraw (when enrolled) ──► withdrawn

* scan: the member shows the dynamic membership QR of the 悦云 mini-program (a signed token valid ~90 s,
  api/member_qr.py) to the camera (decoded with pyzbar on the frames the mirror already has) or to a
  scanner. `member_qr.MemberCodeVerifier` checks it offline (signature, this site, expiry, used once
  here); the member must be in this site's replica. The static ``JOYMEMBER:<member_id>`` code only
  with ``[enrollment] legacy_member_qr = true`` (insecure, default off).
* consent: the versioned consent text (CONSENT_VERSION) in Chinese and English; only an explicit agree
  naming that version goes on. A member who already has a template is offered withdrawal here.
* capture: a random challenge (LIVENESS_STEPS actions out of LIVENESS_ACTIONS, from the face mesh) and,
  in the same session, CAPTURE_FRAMES frames of one face that are frontal and of quality ≥
  ENROLL_MIN_QUALITY. Exactly one face must be in view. The frames must agree with each other
  (SAME_PERSON_MIN_COS) and must not already match another member. The template is their normalised
  mean; it goes to the cloud through the outbox (`Outbox.enrollment`, sealed) with the consent
  recorded by the same event and the scanned token (with its scan time), and comes back to every device
  of the site through Pull. The cloud verifies the token again and refuses a code already spent by ANY
  device (cloud_stub/member_qr.py); a refused enrollment never reaches a replica (the device sees the
  rejection and its compensation through sync).
* withdraw: `Outbox.consent(granted=False)` drops the member's templates on this device in the same
  transaction; the cloud deletes them everywhere and the tombstones reach every device on its next pull.

No frame is ever written anywhere: frames are looked at and dropped; only the template leaves RAM.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from device.greeting import mask_name
from device.mirror.member_qr import MemberCodeRejected, MemberCodeVerifier
from sync.errors import SyncError

_LOG = logging.getLogger(__name__)

CONSENT_VERSION = "face-consent-v1"
CONSENT_TEXT = (
    "我同意悦云在本商场的会员设备上使用我的人脸特征（不保存照片，仅保存加密的特征值）识别我的会员身份，"
    "用于迎宾、积分、优惠券和寻车。我可以随时在魔镜、收银台或小程序中撤回同意，撤回后我的人脸特征将从所有设备删除。"
)
CONSENT_TEXT_EN = (
    "I agree that Joy Cloud devices in this mall use my face features (no photo is kept, only an encrypted "
    "template) to recognise my membership for greetings, points, coupons and finding my car. I can withdraw "
    "at the mirror, the checkout or in the mini-program at any time; my template is then deleted from every device."
)
# Liveness: how many actions of which kinds. Module level so a deployment (or a test clip) can narrow them.
LIVENESS_ACTIONS: tuple[str, ...] = ("turn_left", "turn_right", "blink", "open_mouth")
LIVENESS_STEPS = 2
CAPTURE_FRAMES = 3
# Calibrated on the only moving-face clip we have (a 480x270 GIF, upscaled): its sharpest frontal frames
# reach 0.10-0.14; a 720p mirror camera at arm's length scores far higher. Raise it on real hardware.
ENROLL_MIN_QUALITY = 0.10
FRONTAL_YAW = 0.25  # |mesh yaw| of a frame usable as a template frame
SAME_PERSON_MIN_COS = 0.90
CAPTURE_TIMEOUT_S = 30.0  # frame time allowed for the whole capture step
SCAN_TIMEOUT_S = 60.0
MAX_MISSED_FRAMES = 15  # frames without exactly one face before the session restarts its count
# Longest time from accepting the member code to sending the template. The cloud checks the code again at
# the time it was scanned and allows the capture to follow within its own, larger bound
# (cloud_stub/member_qr.ENROLL_SESSION_MAX_MS), so a session the cloud would refuse ends here first.
ENROLL_SESSION_MAX_S = 600.0

PROMPTS = {
    "turn_left": ("请向左转头", "Turn your head to the left"),
    "turn_right": ("请向右转头", "Turn your head to the right"),
    "blink": ("请眨眨眼", "Please blink"),
    "open_mouth": ("请张张嘴", "Please open your mouth"),
    "hold": ("请正对镜子，保持不动", "Look straight at the mirror and hold still"),
    "one": ("请只留一位顾客在镜前", "Only one person in front of the mirror, please"),
    "scan": ("请出示悦云小程序中的会员码", "Show the member QR code from the Joy Cloud mini-program"),
}


@dataclass
class _Session:
    member_id: str
    greeting: str
    enrolled: bool
    code: str = ""  # the verified membership QR token (empty for a legacy code): the cloud checks it again
    scanned_at_ms: int = 0
    challenge: Any = None
    vectors: list[np.ndarray] = field(default_factory=list)
    started: float | None = None
    missed: int = 0
    prompt: str = "hold"


class EnrollmentFlow:
    """The enrollment state machine. Not thread-safe: drive it from the app's loop thread.

    ``detector``/``embedder`` are the pipeline's; ``landmarker`` gives the face mesh for liveness;
    ``identifier`` is the mirror's (to refuse a face that already belongs to someone else);
    ``member_codes`` (`member_qr.MemberCodeVerifier`) checks the membership QR — without one every code
    is refused.
    """

    def __init__(self, *, replica: Any, outbox: Any, detector: Any, landmarker: Any, embedder: Any,
                 identifier: Any, member_codes: MemberCodeVerifier | None = None,
                 on_gallery_change: Callable[[], None] = lambda: None,
                 rng: random.Random | None = None, mirrored: bool = False) -> None:
        self.replica, self.outbox = replica, outbox
        self.detector, self.landmarker, self.embedder, self.identifier = detector, landmarker, embedder, identifier
        self.member_codes = member_codes
        self.on_gallery_change = on_gallery_change
        self._last_refusal: tuple[str, int] | None = None
        self.rng = rng or random.SystemRandom()
        self.mirrored = mirrored
        self.step: str | None = None
        self.message: tuple[str, str] = ("", "")
        self._session: _Session | None = None
        self._scan_started: float | None = None
        self.model_name = str(getattr(embedder, "model_name", "dlib_resnet_v1"))

    @property
    def active(self) -> bool:
        """True while an enrollment screen is shown."""
        return self.step is not None

    # -- taps ----------------------------------------------------------------------------------------

    def start(self) -> None:
        """The shopper tapped "开通刷脸": ask for the membership QR."""
        self.step, self._session, self._scan_started, self.message = "scan", None, None, ("", "")

    def cancel(self) -> None:
        """Leave the flow; nothing recorded (the session, and any vectors in it, are dropped)."""
        self.step, self._session = None, None

    def on_code(self, code: str) -> bool:
        """A code was scanned while asking for the QR; True when it named a member of this site."""
        if self.step != "scan":
            return False
        try:
            if self.member_codes is None:
                raise MemberCodeRejected("no_verifier", "this device has no member-QR verifier")
            verified = self.member_codes.verify(code)
            member_id = self.member_codes.member_id(verified)
            member = self.replica.member(member_id)
            if member is None:  # not of this site, or not synced here yet
                raise MemberCodeRejected("unknown_member")
            self.member_codes.consume(verified)  # spent only now that it leads to an enrollment
            scanned_at_ms = int(self.member_codes.clock() * 1000)
        except MemberCodeRejected as err:
            self.message = err.message
            # The camera sees the same code in every frame: log a refusal once per distinct code, and never
            # the code itself (a valid one is a bearer credential for ~90 s).
            seen = (err.reason, hash(code))
            if seen != self._last_refusal:
                _LOG.info("enrollment: %s", err)
                self._last_refusal = seen
            return False
        self._last_refusal = None
        self._session = _Session(member_id, mask_name(member["name"]), self._has_templates(member_id),
                                 code=code.strip() if self.member_codes.is_token(verified) else "",
                                 scanned_at_ms=scanned_at_ms)
        self.step, self.message = "consent", ("", "")
        return True

    def agree(self, version: str) -> None:
        """Explicit agreement to the consent text of ``version`` (must be the one shown)."""
        if self.step not in ("consent", "failed") or self._session is None:
            return
        if version != CONSENT_VERSION:
            self.message = ("同意书已更新，请重新阅读", "The consent text changed; please read it again")
            self.step = "consent"
            return
        s = self._session
        actions = self.rng.sample(list(LIVENESS_ACTIONS), k=min(LIVENESS_STEPS, len(LIVENESS_ACTIONS)))
        from inference.liveness import ChallengeResponse

        s.challenge = ChallengeResponse(actions=actions, mirrored=self.mirrored)  # type: ignore[arg-type]
        s.vectors, s.started, s.missed = [], None, 0
        self.step, self.message = "capture", ("", "")

    def retry(self) -> None:
        """Try the capture again after a failure (same member, same consent)."""
        if self.step == "failed":
            self.agree(CONSENT_VERSION)

    def withdraw(self) -> bool:
        """Withdraw the member's consent: templates gone here now, everywhere after the next sync."""
        if self.step != "consent" or self._session is None:
            return False
        try:
            self.outbox.consent(self._session.member_id, granted=False, text_version=CONSENT_VERSION)
        except SyncError as err:
            _LOG.error("withdrawal of %s not recorded: %s", self._session.member_id, err)
            self._fail("撤回未能保存，请稍后重试或联系服务台", "Could not save the withdrawal; please try again")
            return False
        self._session.enrolled = False
        self.step = "withdrawn"
        self.message = ("已撤回同意，您的人脸特征将从所有设备删除", "Consent withdrawn: your face template is deleted from every device")
        self.on_gallery_change()
        return True

    # -- frames --------------------------------------------------------------------------------------

    def feed(self, rgb: np.ndarray, timestamp: float) -> bool:
        """One camera frame; True when the view changed."""
        if self.step == "scan":
            return self._feed_scan(rgb, timestamp)
        if self.step == "capture" and self._session is not None:
            return self._feed_capture(self._session, rgb, timestamp)
        return False

    def _feed_scan(self, rgb: np.ndarray, timestamp: float) -> bool:
        from drivers.errors import DriverError
        from drivers.scanner.camera import decode_image

        if self._scan_started is None:
            self._scan_started = timestamp
        if timestamp - self._scan_started > SCAN_TIMEOUT_S:
            self.cancel()
            return True
        try:
            codes = decode_image(rgb)
        except DriverError as err:  # libzbar missing: say so once, the scanner may still work
            _LOG.error("enrollment: %s", err)
            return False
        before = self.message
        accepted = any(self.on_code(code) for code in codes)
        return accepted or self.message != before  # a refusal's reason must reach the screen

    def _feed_capture(self, s: _Session, rgb: np.ndarray, timestamp: float) -> bool:
        from inference.quality import face_quality

        if s.started is None:
            s.started = timestamp
        if timestamp - s.started > CAPTURE_TIMEOUT_S:
            self._fail("时间到了，请重试", "Time is up; please try again")
            return True
        faces = self.detector.detect(rgb)
        if len(faces) != 1:
            s.missed += 1
            s.challenge.feed(None, timestamp)
            if s.missed > MAX_MISSED_FRAMES and s.vectors:
                s.vectors = []  # somebody else may be in front of the mirror now: start the frames again
            return self._prompt(s, "one" if faces else s.prompt)
        s.missed = 0
        det = faces[0]
        geometry = self.landmarker.mesh(rgb, det.box).geometry
        state = s.challenge.feed(geometry, timestamp)
        if state == "failed":
            self._fail("活体检测未通过，请按提示动作", "Liveness check failed; follow the prompts")
            return True
        if (len(s.vectors) < CAPTURE_FRAMES and abs(geometry.yaw) <= FRONTAL_YAW
                and face_quality(rgb, det) >= ENROLL_MIN_QUALITY):
            s.vectors.append(np.asarray(self.embedder.embed(rgb, det.box), dtype=np.float32))
        if state == "passed" and len(s.vectors) >= CAPTURE_FRAMES:
            self._finish(s)
            return True
        return self._prompt(s, s.challenge.current or "hold", force=True)

    def _prompt(self, s: _Session, prompt: str, force: bool = False) -> bool:
        changed = force or prompt != s.prompt
        s.prompt = prompt
        return changed

    def _finish(self, s: _Session) -> None:
        vectors = np.stack([v / max(np.linalg.norm(v), 1e-12) for v in s.vectors])
        sims = vectors @ vectors.T
        if float(sims.min()) < SAME_PERSON_MIN_COS:
            self._fail("画面中的人脸不一致，请一人站在镜前重试", "The frames show different faces; one person, please")
            return
        template = vectors.mean(axis=0)
        template = (template / np.linalg.norm(template)).astype("<f4")
        # Refuse only a face the mirror would itself greet as somebody else on the face alone: at the
        # calibrated threshold a large gallery "matches" many newcomers by chance (device/open_set.py;
        # at 1,000 members about a third), and they would all be sent to the service desk.
        clash = self.identifier.decide(template)
        if clash.member_id is not None and clash.confirm:
            _LOG.info("enrollment for %s: the face resembles member %s (%.3f), under the greeting threshold"
                      " of this gallery: not a clash", s.member_id, clash.member_id, clash.score)
        elif clash.member_id is not None and clash.member_id != s.member_id:
            _LOG.warning("enrollment for %s refused: the face matches member %s (%.3f)",
                         s.member_id, clash.member_id, clash.score)
            self._fail("这张脸已绑定其他会员，请到服务台办理", "This face belongs to another member; please see the service desk")
            return
        if self.member_codes is not None and (
                self.member_codes.clock() * 1000 - s.scanned_at_ms > ENROLL_SESSION_MAX_S * 1000):
            # The cloud would refuse a template captured this long after the code: ask for a fresh code.
            self.step, self._session = "scan", None
            self._scan_started = None
            self.message = ("会员码已过期，请重新出示会员码", "The member code has expired; show it again, please")
            return
        consent_id = f"consent-{uuid.uuid4()}"
        try:
            self.outbox.enrollment(s.member_id, consent_id, f"tpl-{uuid.uuid4()}", self.model_name,
                                   template.tobytes(), consent_text_version=CONSENT_VERSION,
                                   member_code=s.code, code_scanned_at_ms=s.scanned_at_ms)
        except SyncError as err:
            _LOG.error("enrollment of %s not recorded: %s", s.member_id, err)
            self._fail("未能保存，请稍后重试", "Could not save; please try again later")
            return
        s.vectors = []  # the template left RAM for the sealed outbox; drop the frames' vectors
        self.step = "done"
        self.message = ("开通成功！同步后即可刷脸识别", "Done! Your face works at every device after the next sync")

    def _fail(self, zh: str, en: str) -> None:
        self.step, self.message = "failed", (zh, en)
        if self._session is not None:
            self._session.vectors = []

    def _has_templates(self, member_id: str) -> bool:
        with self.replica.transaction() as conn:
            return conn.execute("SELECT 1 FROM templates WHERE member_id = ? LIMIT 1", (member_id,)).fetchone() is not None

    # -- the view ------------------------------------------------------------------------------------

    def view(self, now: datetime | None = None) -> dict[str, Any]:
        """The "enroll" mirror view model of the current step."""
        assert self.step is not None
        out: dict[str, Any] = {"state": "enroll", "step": self.step}
        s = self._session
        if s is not None:
            out["greeting"] = f"{s.greeting}，您好"
            out["greeting_en"] = f"Hello, {s.greeting}"
        if self.step == "scan":
            out["prompt"], out["prompt_en"] = PROMPTS["scan"]
        elif self.step == "consent" and s is not None:
            out["consent"] = {"version": CONSENT_VERSION, "text": CONSENT_TEXT, "text_en": CONSENT_TEXT_EN}
            out["enrolled"] = s.enrolled
        elif self.step == "capture" and s is not None:
            out["prompt"], out["prompt_en"] = PROMPTS.get(s.prompt, PROMPTS["hold"])
            out["progress"] = min(len(s.vectors), CAPTURE_FRAMES)
            out["liveness_total"] = len(s.challenge.actions)
            out["liveness_done"] = s.challenge.step
        if self.message[0]:
            out["message"], out["message_en"] = self.message
        return out


def member_codes(scanner: Any, timeout: float = 0.0) -> Sequence[str]:
    """Codes waiting on an optional scanner (the π-POS's, or one fitted to a mirror); [] without one."""
    if scanner is None:
        return []
    from drivers.errors import DriverError

    try:
        return scanner.read(timeout)
    except DriverError as err:
        _LOG.warning("enrollment: scanner: %s", err)
        return []
