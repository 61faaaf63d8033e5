"""Open-set identification: is this face a consenting member, and which one?

A probe is accepted only when its best member clears the threshold AND beats the runner-up by a
margin; otherwise the face is unknown. Several embeddings of one track vote: a track is greeted
as a member only when no embedding of it pointed at somebody else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from device.gallery import Gallery


@dataclass(frozen=True)
class Decision:
    """The outcome of one probe."""

    member_id: str | None
    score: float
    margin: float


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


class Identifier:
    """Applies threshold and margin to gallery candidates."""

    def __init__(self, gallery: Gallery, *, threshold: float, min_margin: float) -> None:
        self.gallery = gallery
        self.threshold = threshold
        self.min_margin = min_margin

    def decide(self, embedding: np.ndarray) -> Decision:
        """Accept the best candidate, or return an unknown decision."""
        candidates = self.gallery.search(embedding, k=2)
        if not candidates:
            return Decision(None, 0.0, 0.0)
        best = candidates[0]
        runner_up = candidates[1].score if len(candidates) > 1 else -1.0
        margin = best.score - runner_up
        if best.score >= self.threshold and margin >= self.min_margin:
            return Decision(best.member_id, best.score, margin)
        return Decision(None, best.score, margin)
