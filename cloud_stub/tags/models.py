"""Learned and predicted tags: k-means segments over RFM features, churn risk and lifetime value.

k-means
    Features per purchasing member: log1p(days since last purchase), log1p(purchases),
    log1p(total spend in yuan), each standardised. k ∈ [K_MIN, K_MAX] is chosen by the mean silhouette
    on a fixed random sample (SILHOUETTE_SAMPLE members; exact silhouette is O(n²)); the chosen k is
    then fitted on every member (k-means++ seeding, Lloyd iterations). Segments are named C1…Ck by
    their centroid's spend, highest first. Plain numpy; deterministic for a seed.

Churn risk ("overdue" model)
    A member's usual gap g is the mean days between their purchases ((last − first) / (n − 1) for
    n ≥ 2; the population median gap for a single purchase; at least 1 day). With d days since the
    last purchase, P(churn) = 1 − exp(−max(0, d − g) / g): zero while the member is not yet overdue,
    0.63 one gap late, 0.86 two gaps late. Labels: 高流失风险 ≥ 0.7 > 中流失风险 ≥ 0.3 > 低流失风险.

Lifetime value (next 12 months)
    LTV = (1 − P(churn)) × purchases expected in 365 days (365 / g, at most one a day) × the member's
    average ticket, in cents. Labels by rank: top 20 % 高价值, next 40 % 中价值, the rest 低价值.
"""

from __future__ import annotations

import numpy as np

K_MIN, K_MAX = 2, 6
SILHOUETTE_SAMPLE = 2000
KMEANS_ITERATIONS = 40
CHURN_HIGH, CHURN_MID = 0.7, 0.3
DEFAULT_GAP_DAYS = 30.0


def features(days: np.ndarray, count: np.ndarray, spend_cents: np.ndarray) -> np.ndarray:
    """Standardised RFM features, one row per member."""
    x = np.column_stack([np.log1p(days), np.log1p(count), np.log1p(np.asarray(spend_cents) / 100.0)])
    x = x.astype(np.float64)
    std = x.std(axis=0)
    std[std == 0] = 1.0
    return (x - x.mean(axis=0)) / std


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means with k-means++ seeding; returns (labels, centroids)."""
    n = len(x)
    centroids = [x[rng.integers(n)]]
    d2 = ((x - centroids[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        idx = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centroids.append(x[idx])
        d2 = np.minimum(d2, ((x - x[idx]) ** 2).sum(axis=1))
    c = np.array(centroids)
    labels = np.zeros(n, dtype=np.int64)
    for it in range(KMEANS_ITERATIONS):
        dist = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        new = dist.argmin(axis=1)
        if it and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            members = x[labels == j]
            if len(members):
                c[j] = members.mean(axis=0)
    return labels, c


def silhouette(x: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette coefficient (Euclidean), exact; meant for a sample of a few thousand rows."""
    ks = np.unique(labels)
    if len(ks) < 2:
        return 0.0
    sq = (x ** 2).sum(axis=1)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0))
    mean_to = np.stack([dist[:, labels == k].mean(axis=1) for k in ks], axis=1)
    own = np.searchsorted(ks, labels)
    sizes = np.array([(labels == k).sum() for k in ks])
    a = mean_to[np.arange(len(x)), own] * sizes[own] / np.maximum(sizes[own] - 1, 1)
    other = mean_to.copy()
    other[np.arange(len(x)), own] = np.inf
    b = other.min(axis=1)
    s = np.where(sizes[own] > 1, (b - a) / np.maximum(np.maximum(a, b), 1e-12), 0.0)
    return float(s.mean())


def segments(
    days: np.ndarray, count: np.ndarray, spend_cents: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, int, float]:
    """k-means segment names (C1 = highest-spend centroid) per member, the chosen k and its silhouette."""
    n = len(days)
    if n < K_MIN * 2:
        return np.array(["C1"] * n, dtype=object), 1, 0.0
    x = features(days, count, spend_cents)
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(n, size=min(n, SILHOUETTE_SAMPLE), replace=False)]
    best_k, best_s = K_MIN, -2.0
    for k in range(K_MIN, min(K_MAX, len(np.unique(sample, axis=0)) - 1) + 1):
        labels, _ = kmeans(sample, k, np.random.default_rng(seed + k))
        s = silhouette(sample, labels)
        if s > best_s:
            best_k, best_s = k, s
    labels, centroids = kmeans(x, best_k, np.random.default_rng(seed + best_k))
    order = np.argsort(-centroids[:, 2])  # by standardised log spend, highest first
    rank = np.empty(best_k, dtype=np.int64)
    rank[order] = np.arange(1, best_k + 1)
    names = np.array([f"C{r}" for r in rank], dtype=object)
    return names[labels], best_k, max(best_s, -1.0)


def usual_gap_days(first_ms: np.ndarray, last_ms: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Mean days between purchases per member (population median for single purchases)."""
    n = np.asarray(count)
    span = (np.asarray(last_ms) - np.asarray(first_ms)) / 86_400_000.0
    multi = n >= 2
    gaps = np.where(multi, span / np.maximum(n - 1, 1), np.nan)
    fallback = float(np.median(gaps[multi])) if multi.any() else DEFAULT_GAP_DAYS
    return np.maximum(np.where(multi, gaps, fallback), 1.0)


def churn_probability(days: np.ndarray, gap_days: np.ndarray) -> np.ndarray:
    """P(churn) = 1 − exp(−max(0, d − g) / g)."""
    return 1.0 - np.exp(-np.maximum(0.0, np.asarray(days) - gap_days) / gap_days)


def churn_labels(p: np.ndarray) -> np.ndarray:
    """高/中/低流失风险 from churn probabilities."""
    return np.select([p >= CHURN_HIGH, p >= CHURN_MID], ["高流失风险", "中流失风险"], "低流失风险").astype(object)


def lifetime_value_cents(p_churn: np.ndarray, gap_days: np.ndarray, spend: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Predicted spend over the next 12 months, cents."""
    per_year = np.minimum(365.0 / gap_days, 365.0)
    return (1.0 - p_churn) * per_year * (np.asarray(spend) / np.maximum(np.asarray(count), 1))


def rank_labels(values: np.ndarray, labels: tuple[str, str, str], shares: tuple[float, float] = (0.2, 0.6)) -> np.ndarray:
    """Top `shares[0]` → labels[0], up to `shares[1]` → labels[1], the rest labels[2] (ties by order)."""
    n = len(values)
    if n == 0:
        return np.array([], dtype=object)
    order = np.argsort(-np.asarray(values), kind="stable")
    pos = np.empty(n, dtype=np.int64)
    pos[order] = np.arange(n)
    frac = pos / n
    return np.select([frac < shares[0], frac < shares[1]], [labels[0], labels[1]], labels[2]).astype(object)
