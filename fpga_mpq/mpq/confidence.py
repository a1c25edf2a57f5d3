"""How sure a measured accuracy is: the search chooses on a finite validation set (360 samples for
digits, where one standard error is about one point, as large as a typical allowed drop), so a
choice on point estimates lands on lucky designs and misses better ones by chance.

Both figures here are bootstraps over the samples, drawn in closed form rather than by resampling
indices: a resample's count of right answers is Binomial(n, acc), and a paired resample of two
models draws how many samples only the first gets right and how many only the second does
(a multinomial over the four right / wrong cells), which is the same distribution the index
bootstrap samples. A fixed seed keeps every figure repeatable.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 4000
SEED = 0
INTERVAL = 0.95  # two-sided level of every reported accuracy interval
CONFIDENCE = 0.9  # one-sided level at which a chosen design must meet a max-drop target


def interval(correct: np.ndarray, level: float = INTERVAL) -> tuple[float, float]:
    """Percentile bootstrap interval of the accuracy of ``correct`` (one bool per sample)."""
    n = len(correct)
    acc = np.random.default_rng(SEED).binomial(n, float(np.mean(correct)), RESAMPLES) / n
    tail = (1.0 - level) / 2
    return float(np.quantile(acc, tail)), float(np.quantile(acc, 1.0 - tail))


def drop_bound(reference: np.ndarray, candidate: np.ndarray, confidence: float = CONFIDENCE) -> float:
    """Upper ``confidence`` bound on the accuracy drop ``reference − candidate`` measured on the same
    samples (a fraction: 0.01 is one point). Pairing cancels the samples both get right or both
    wrong, so the bound is much tighter than two separate intervals."""
    if reference.shape != candidate.shape:
        raise ValueError(f"paired samples differ in shape: {reference.shape} vs {candidate.shape}")
    n = len(reference)
    only_ref = int(np.sum(reference & ~candidate))
    only_cand = int(np.sum(candidate & ~reference))
    cells = np.array([only_ref, only_cand, n - only_ref - only_cand]) / n
    draws = np.random.default_rng(SEED).multinomial(n, cells, RESAMPLES)
    return float(np.quantile((draws[:, 0] - draws[:, 1]) / n, confidence))
