"""Biometric error rates from similarity scores (higher = more alike), as in ISO/IEC 19795-1.

Pure numpy, no models: 1:1 verification (TAR at a FAR), open-set 1:N identification (FNIR at an
FPIR) and the threshold that achieves a target false-alarm rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def threshold_at_rate(negatives: np.ndarray, rate: float) -> float:
    """The lowest threshold (accept when score >= threshold) with a false-accept rate <= ``rate``.

    With n negatives, at most floor(rate * n) may reach it; with none allowed the threshold sits just
    above the highest negative. No negatives → +inf is never useful, so -inf (accept everything).
    """
    neg = np.sort(np.asarray(negatives, dtype=np.float64))[::-1]
    if neg.size == 0:
        return float("-inf")
    allowed = int(np.floor(rate * neg.size + 1e-9))
    if allowed >= neg.size:
        return float("-inf")
    # Strictly above the (allowed+1)-th highest negative.
    return float(np.nextafter(neg[allowed], np.inf))


def tar_at_far(genuine: np.ndarray, impostor: np.ndarray, far: float) -> float:
    """1:1 true-accept rate at the threshold giving a false-accept rate <= ``far``."""
    genuine = np.asarray(genuine, dtype=np.float64)
    if genuine.size == 0:
        return float("nan")
    thr = threshold_at_rate(impostor, far)
    return float(np.mean(genuine >= thr))


@dataclass(frozen=True)
class OpenSetScores:
    """Top-1 results of 1:N probes: for mated probes, the score and whether top-1 was right."""

    mated_scores: np.ndarray  # best candidate's score for each probe of an enrolled person
    mated_correct: np.ndarray  # bool: best candidate was the right person
    nonmated_scores: np.ndarray  # best candidate's score for each probe of a never-enrolled person

    def rank1(self) -> float:
        """Closed-set rank-1 identification rate of the mated probes."""
        return float(np.mean(self.mated_correct)) if self.mated_correct.size else float("nan")

    def threshold_at_fpir(self, fpir: float) -> float:
        """Threshold at which at most ``fpir`` of never-enrolled probes are matched to someone."""
        return threshold_at_rate(self.nonmated_scores, fpir)

    def fnir_at(self, threshold: float) -> float:
        """Share of mated probes missed: wrong top-1, or right but below ``threshold``."""
        if not self.mated_scores.size:
            return float("nan")
        hit = self.mated_correct & (self.mated_scores >= threshold)
        return float(1.0 - np.mean(hit))

    def fpir_at(self, threshold: float) -> float:
        """Share of never-enrolled probes whose best candidate reaches ``threshold``."""
        if not self.nonmated_scores.size:
            return float("nan")
        return float(np.mean(self.nonmated_scores >= threshold))

    def fnir_at_fpir(self, fpir: float) -> float:
        """FNIR at the threshold calibrated for ``fpir``; NaN without never-enrolled probes."""
        if not self.nonmated_scores.size:
            return float("nan")
        return self.fnir_at(self.threshold_at_fpir(fpir))

    def det_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(FPIR, FNIR) over every distinct score used as threshold, for a DET plot."""
        thresholds = np.unique(np.concatenate([self.mated_scores, self.nonmated_scores]))
        fpir = np.array([self.fpir_at(t) for t in thresholds])
        fnir = np.array([self.fnir_at(t) for t in thresholds])
        return fpir, fnir


def pair_scores(embeddings: np.ndarray, labels: list[str], extra: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """All 1:1 pair cosine scores: (genuine, impostor).

    ``embeddings``/``labels`` are the enrolled people's photos; ``extra`` are never-enrolled people's
    embeddings, paired with every labelled one as impostors (never with each other, since two
    distractor photos may show the same unlabelled person).
    """
    emb = _unit_rows(embeddings)
    sims = emb @ emb.T
    lab = np.asarray(labels)
    same = lab[:, None] == lab[None, :]
    upper = np.triu(np.ones_like(same, dtype=bool), k=1)
    genuine = sims[same & upper]
    impostor = sims[~same & upper]
    if extra is not None and len(extra):
        impostor = np.concatenate([impostor, (emb @ _unit_rows(extra).T).ravel()])
    return genuine, impostor


def impostor_sides(labels: list[str], n_extra: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Who is on each side of `pair_scores`' impostor pairs, in the same order: integer person ids
    (the labels' people, then one id per ``extra`` photo, whose people are not known)."""
    lab = np.asarray(labels)
    people, code = np.unique(lab, return_inverse=True)
    upper = np.triu(np.ones((lab.size, lab.size), dtype=bool), k=1)
    rows, cols = np.nonzero((lab[:, None] != lab[None, :]) & upper)
    a, b = code[rows], code[cols]
    if n_extra:
        a = np.concatenate([a, np.repeat(code, n_extra)])
        b = np.concatenate([b, np.tile(people.size + np.arange(n_extra), lab.size)])
    return a, b


def _unit_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float32)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
