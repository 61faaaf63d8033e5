"""Open-set identification: is this face a consenting member, and which one?

A probe is accepted only when its best member clears the threshold AND beats the runner-up by a
margin; otherwise the face is unknown. Several embeddings of one track vote: a track is greeted
as a member only when no embedding of it pointed at somebody else.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np

from device.config import IdentityConfig
from device.gallery import Gallery
from device.open_set import OpenSetPolicy, Thresholds
from sync.replica import Replica


@dataclass(frozen=True)
class Decision:
    """The outcome of one probe."""

    member_id: str | None
    score: float
    margin: float
    template_id: str = ""  # the template that matched (or came closest)
    candidate: str | None = None  # the best member even when rejected, for feedback and logs
    # Accepted, but under the gallery-size greeting threshold (device/open_set.py): a second factor
    # (the phone's last four digits) must confirm it before anything personal is shown.
    confirm: bool = False


@dataclass
class TrackVotes:
    """Decisions gathered for one track."""

    accepted: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    best_score: float = 0.0

    def add(self, decision: Decision) -> None:
        """Count one decision."""
        self.best_score = max(self.best_score, decision.score)
        if decision.member_id is None:
            self.rejected += 1
        else:
            self.accepted[decision.member_id] = self.accepted.get(decision.member_id, 0) + 1

    def verdict(self) -> str | None:
        """The member all accepted votes agree on, or None (no vote, or a conflict)."""
        return next(iter(self.accepted)) if len(self.accepted) == 1 else None


# Each "not me" multiplies the matched template's weight for that member by this, down to the floor.
# 0.95 takes a 0.96 match to 0.912, under the calibrated 0.93 match threshold: one press stops it.
NOT_ME_STEP = 0.95
NOT_ME_FLOOR = 0.5


class Identifier:
    """Applies threshold and margin to gallery candidates.

    ``threshold`` is the open-set match threshold; ``payment_threshold`` is the stricter one used when
    ``decide(..., payment=True)``. Both come from `joyedge eval calibrate`. With a ``policy`` the
    greeting and payment thresholds rise with the gallery's size (`thresholds()`); an accepted match
    under the greeting threshold comes back with ``confirm`` set.
    """

    def __init__(
        self, gallery: Gallery, *, threshold: float, min_margin: float, payment_threshold: float | None = None,
        policy: OpenSetPolicy | None = None,
    ) -> None:
        self.gallery = gallery
        self.threshold = threshold
        self.min_margin = min_margin
        self.payment_threshold = max(threshold, payment_threshold if payment_threshold is not None else threshold)
        self.policy = policy or OpenSetPolicy(None, match_threshold=threshold, payment_threshold=self.payment_threshold,
                                              greeting_fpir=1.0, payment_fpir=1.0)

    @classmethod
    def from_config(cls, gallery: Gallery, ident: IdentityConfig) -> Identifier:
        """An identifier over ``gallery`` with an ``[identity]`` section's thresholds and policy."""
        return cls(gallery, threshold=ident.match_threshold, min_margin=ident.min_margin,
                   payment_threshold=ident.payment_threshold, policy=OpenSetPolicy.from_config(ident))

    def thresholds(self, present: Collection[str] = ()) -> Thresholds:
        """The thresholds in force for the gallery as it is now, with ``present`` members known to be here."""
        return self.policy.thresholds(self.gallery.template_count, self.gallery.templates_of(present))

    def decide(self, embedding: np.ndarray, payment: bool = False, present: Collection[str] = ()) -> Decision:
        """Accept the best candidate, or return an unknown decision.

        ``present``: members known to be here today (device/open_set.py): a match to one of them needs
        only the ``greet_present`` threshold to be greeted on the face alone.
        """
        candidates = self.gallery.search(embedding, k=2)
        if not candidates:
            return Decision(None, 0.0, 0.0)
        best = candidates[0]
        runner_up = candidates[1].score if len(candidates) > 1 else -1.0
        margin = best.score - runner_up
        limits = self.thresholds(present)
        threshold = limits.payment if payment else self.threshold
        if best.score >= threshold and margin >= self.min_margin:
            greet = limits.greet_present if best.member_id in present else limits.greet
            return Decision(best.member_id, best.score, margin, best.template_id, best.member_id,
                            confirm=best.score < greet)
        return Decision(None, best.score, margin, best.template_id, best.member_id)

    def not_me(self, decision: Decision, replica: Replica) -> float | None:
        """The shopper said "not me" to ``decision``: record it and lower that template for that member.

        Returns the template's new weight factor, or None when the decision named no template.
        """
        member = decision.member_id or decision.candidate
        if not member or not decision.template_id:
            return None
        before = replica.template_factors().get(decision.template_id, 1.0)
        factor = replica.record_not_me(member, decision.template_id, decision.score, NOT_ME_STEP, NOT_ME_FLOOR)
        self.gallery.scale_template(decision.template_id, factor / before)
        return factor
