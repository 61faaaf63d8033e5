"""How sure must a match be when a stranger is compared with every consenting member?

The open-set threshold (`joyedge eval calibrate`) is measured on a gallery of ten people, but at a
mall a stranger's face is searched against all N consenting members, and it is greeted as somebody
when ANY of them clears the threshold. Whatever the correlation between members, the union bound
gives

    FPIR(t, N) <= N * FAR(t)

where FAR(t) is the chance that one stranger/template pair scores >= t. So for a target share of
strangers greeted as someone (``greeting_fpir``) the threshold must satisfy FAR(t) <= fpir / N, which
at a few thousand members is a FAR of 1e-6 and below: far under anything the labelled photos can
measure (28k impostor pairs). `ImpostorTail` extrapolates: above a high quantile ``u`` of the impostor
scores the exceedances are modelled as exponential,

    FAR(t) = p_u * exp(-(t - u) / beta)        for t >= u

with ``beta`` the bootstrap 95 % upper bound of the mean excess. An exponential tail is heavier than
the bounded tails a generalised Pareto fit finds on cosine scores (those put a hard end point below
0.96 and were contradicted by an observed 0.957 pair), so the extrapolation errs towards asking.

`OpenSetPolicy.thresholds(n)` gives the device three numbers for a gallery of ``n`` templates:
``base`` (below: unknown, as before), ``greet`` (from here the mirror greets on the face alone;
between ``base`` and ``greet`` it asks for the phone's last four digits first) and ``payment`` (from
here the π-POS may skip the phone digits). With a small gallery ``greet`` equals ``base`` and nothing
changes; see bench/RESULTS.md "Gallery size and the greeting threshold" for the measured figures.

**Members known to be here.** A member who proved who they are today (the phone digits at this
mirror, or a strong look) is very likely the person who matches them again an hour later; for the
union bound that member is one of a handful, not one of thousands. So the FPIR budget is split:
``present_share`` of it over the templates of the members present (``greet_present``), the rest over
the whole gallery (``greet``). Summed over every member, a stranger's chance of being greeted as
somebody still stays within ``greeting_fpir``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from device.config import IdentityConfig
from device.errors import DeviceError

# The tail starts at this quantile of the impostor scores; below it the empirical FAR is used
# directly by calibration and the model is not needed.
TAIL_QUANTILE = 0.98
# The share of the greeting FPIR budget spent on members known to be present (see the docstring).
PRESENT_SHARE = 0.5
# Fewer exceedances than this and the mean excess is noise: refuse to fit rather than guess.
MIN_EXCEEDANCES = 30
BOOTSTRAP_ROUNDS = 400
BOOTSTRAP_LEVEL = 0.95


@dataclass(frozen=True)
class ImpostorTail:
    """Exponential model of the upper tail of single-pair impostor scores (cosine similarity)."""

    u: float  # where the tail starts (a score)
    p_u: float  # share of impostor pairs scoring above u
    beta: float  # mean excess above u (its bootstrap upper bound when fitted)

    def __post_init__(self) -> None:
        if not (0.0 < self.p_u <= 1.0) or self.beta <= 0.0 or not (-1.0 <= self.u < 1.0):
            raise DeviceError(f"impostor tail out of range: u={self.u} p_u={self.p_u} beta={self.beta}")

    def far(self, t: float) -> float:
        """Modelled chance that one impostor pair scores >= ``t`` (only meaningful for t >= u)."""
        if t <= self.u:
            return self.p_u
        return self.p_u * math.exp(-(t - self.u) / self.beta)

    def threshold_for_far(self, far: float) -> float:
        """The score at which the modelled FAR equals ``far``; ``u`` when ``far`` >= p_u."""
        if far <= 0.0:
            return 1.0
        if far >= self.p_u:
            return self.u
        return self.u + self.beta * math.log(self.p_u / far)

    @classmethod
    def fit(cls, impostor: np.ndarray, quantile: float = TAIL_QUANTILE, seed: int = 0,
            sides: tuple[np.ndarray, np.ndarray] | None = None) -> ImpostorTail:
        """Fit the tail to impostor scores (1:1 pairs of different people).

        ``sides`` gives, per pair, the person (any integer id) on each side. The high scores are not
        independent — a few faces take part in many of them — so with ``sides`` the bootstrap resamples
        people, weighting each pair by how often both of its people were drawn (a two-way "pigeonhole"
        bootstrap); without it, pairs are resampled as if independent, which gives too narrow a bound.
        """
        scores = np.asarray(impostor, dtype=np.float64).ravel()
        finite = np.isfinite(scores)
        scores = scores[finite]
        if sides is not None:
            a, b = (np.asarray(side).ravel()[finite] for side in sides)
        need = math.ceil(MIN_EXCEEDANCES / (1.0 - quantile))
        if scores.size < need:
            raise DeviceError(
                f"{scores.size} impostor pairs are too few to model the score tail: {need}+ are needed "
                f"(more never-enrolled people, or more photos per person)")
        u = float(np.quantile(scores, quantile))
        excess = scores[scores > u] - u
        if excess.size < MIN_EXCEEDANCES:  # many tied scores at u
            raise DeviceError(f"only {excess.size} impostor scores above {u:.4f}: the tail cannot be modelled")
        rng = np.random.default_rng(seed)
        if sides is None:
            means = rng.choice(excess, size=(BOOTSTRAP_ROUNDS, excess.size), replace=True).mean(axis=1)
        else:
            above = scores > u
            population, codes = np.unique(np.concatenate([a, b]), return_inverse=True)
            ca, cb = codes[: a.size][above], codes[a.size:][above]
            drawn = rng.multinomial(population.size, np.full(population.size, 1.0 / population.size),
                                    size=BOOTSTRAP_ROUNDS).astype(np.float64)
            weight = drawn[:, ca] * drawn[:, cb]  # a pair counts as often as both its people were drawn
            total = weight.sum(axis=1)
            means = (weight @ excess)[total > 0] / total[total > 0]
        beta = float(np.quantile(means, BOOTSTRAP_LEVEL))
        return cls(u=u, p_u=float(excess.size / scores.size), beta=max(beta, 1e-6))

    def as_dict(self) -> dict[str, float]:
        """Rounded fields, as written to device.toml's [identity.impostor_tail]."""
        return {"u": round(self.u, 5), "p_u": round(self.p_u, 6), "beta": round(self.beta, 6)}


@dataclass(frozen=True)
class Thresholds:
    """The three thresholds in force for a gallery of ``templates`` rows."""

    base: float  # below: not a member
    greet: float  # from here the face alone is enough to greet
    payment: float  # from here the π-POS does not ask for the phone digits (close candidates aside)
    templates: int
    greet_present: float = 1.0  # the greeting threshold for members known to be present (== greet when none)
    present: int = 0  # templates of the members present


class OpenSetPolicy:
    """Thresholds that grow with the gallery so that the share of strangers matched stays bounded."""

    def __init__(self, tail: ImpostorTail | None, *, match_threshold: float, payment_threshold: float,
                 greeting_fpir: float, payment_fpir: float) -> None:
        """``tail`` None keeps the calibrated thresholds whatever the gallery size (the old behaviour)."""
        self.tail = tail
        self.match_threshold = match_threshold
        self.payment_threshold = max(payment_threshold, match_threshold)
        self.greeting_fpir = greeting_fpir
        self.payment_fpir = payment_fpir
        self._cache: Thresholds | None = None

    @classmethod
    def from_config(cls, ident: IdentityConfig, tail: ImpostorTail | None = None, *,
                    match_threshold: float | None = None, payment_threshold: float | None = None) -> OpenSetPolicy:
        """The policy of an ``[identity]`` section: its own tail (fixed thresholds when
        ``scale_with_gallery`` is off), or ``tail`` and thresholds just measured (calibration, studies)."""
        if tail is None and ident.scale_with_gallery:
            tail = ImpostorTail(**ident.impostor_tail.model_dump())
        return cls(tail, match_threshold=ident.match_threshold if match_threshold is None else match_threshold,
                   payment_threshold=ident.payment_threshold if payment_threshold is None else payment_threshold,
                   greeting_fpir=ident.greeting_fpir, payment_fpir=ident.payment_fpir)

    def thresholds(self, templates: int, present: int = 0) -> Thresholds:
        """Thresholds for ``templates`` gallery rows, ``present`` of them of members known to be here
        (cached for the last sizes asked)."""
        cached = self._cache
        if cached is not None and (cached.templates, cached.present) == (templates, present):
            return cached
        greet = greet_present = self.match_threshold
        payment = self.payment_threshold
        if self.tail is not None and templates > 0:
            share = PRESENT_SHARE if present > 0 else 0.0
            greet = max(greet, self.tail.threshold_for_far(self.greeting_fpir * (1.0 - share) / templates))
            greet_present = greet
            if present > 0:
                greet_present = max(self.match_threshold,
                                    self.tail.threshold_for_far(self.greeting_fpir * share / present))
            payment = max(payment, self.tail.threshold_for_far(self.payment_fpir / templates))
        result = Thresholds(self.match_threshold, min(greet, 1.0), min(payment, 1.0), templates,
                            min(greet_present, 1.0), present)
        self._cache = result
        return result

    def largest_gallery(self, threshold: float, fpir: float) -> int:
        """The most templates for which ``threshold`` keeps the modelled FPIR within ``fpir``."""
        if self.tail is None:
            return 0
        return int(fpir / max(self.tail.far(threshold), 1e-300))
