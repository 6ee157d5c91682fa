"""Squared norms of population gradient means from streamed sums, docs/theory.md §7, in O(m·d) memory.

The staleness bias (17) at a probe is ‖E s − E f‖², with s_b = ∇ℓ(θ_t; β_t, z_b) on a new batch from β_t and
f_b = ∇ℓ(θ_t; θ_t, z_b) on a fresh batch from θ_t. Its §7 estimator, averaged over every split in halves, is the
two-sample U-statistic

    ‖b‖² ≈ Σ_{i≠j}⟨s_i, s_j⟩/(B_s(B_s−1)) + Σ_{i≠j}⟨f_i, f_j⟩/(B_f(B_f−1)) − 2⟨s̄, f̄⟩,

unbiased and possibly negative. It needs only each batch's gradient sum and the per-group squared norms, so the
per-group gradients are folded in one at a time and never stored: a :class:`Streamed` keeps m chunk sums of
consecutive groups (m × d floats, m = ``chunks``), from which the point estimate is exact and its interval comes
from a delete-one-chunk jackknife with a t quantile (Satterthwaite degrees of freedom). With one group per chunk
this is the delete-one-group jackknife of the dense estimator. The same one-sample statistic gives ‖E d‖² of the
L_β secant (10) with its sampling noise tr Cov(d)/B removed.
"""

import math

import numpy as np
import torch
from scipy import stats

GRAM_BLOCK = 1 << 24
"""Columns per block when the chunk sums' Gram matrix is accumulated in float64 (bounded temporary memory)."""


class Streamed:
    """m chunk sums of ``items`` vectors added one at a time (item i goes to chunk ⌊i·m/items⌋), their squared
    norms per chunk, and every item's norm."""

    def __init__(self, items, chunks, size, device="cpu"):
        if items < 2:
            raise ValueError(f"a streamed mean needs at least 2 items, got {items}")
        self.items, self.chunks = items, min(chunks, items)
        self.sums = torch.zeros(self.chunks, size, device=device)
        self.square = np.zeros(self.chunks)
        self.count = np.zeros(self.chunks, dtype=int)
        self.norms = []

    def chunk_of(self, i):
        return i * self.chunks // self.items

    def add(self, i, vectors, sign=1.0):
        """Fold item ``i``, given as the pieces of one flat vector (e.g. the parameters' gradients), times ``sign``;
        no pieces: a zero vector."""
        a, square, offset = self.chunk_of(i), 0.0, 0
        for piece in vectors:
            flat = piece.reshape(-1).float()
            self.sums[a, offset:offset + flat.numel()].add_(flat, alpha=sign)
            square += float(flat.double().square().sum())
            offset += flat.numel()
        if offset not in (0, self.sums.shape[1]):
            raise ValueError(f"item of {offset} entries for a sum of {self.sums.shape[1]}")
        self.square[a] += square
        self.count[a] += 1
        self.norms.append(math.sqrt(square))


def gram(*accumulators):
    """Float64 Gram matrix of every chunk sum of ``accumulators`` (in order), accumulated in column blocks."""
    sums = torch.cat([acc.sums for acc in accumulators])
    total = torch.zeros(sums.shape[0], sums.shape[0], dtype=torch.float64)
    for start in range(0, sums.shape[1], GRAM_BLOCK):
        block = sums[:, start:start + GRAM_BLOCK].double()
        total += (block @ block.T).cpu()
    return total.numpy()


def _mean_sq(k, square, count):
    """Unbiased ‖E x‖² from the Gram ``k`` of chunk sums, their summed squared item norms and item counts."""
    n = count.sum()
    return (k.sum() - square.sum()) / (n * (n - 1))


def _estimate(k, square, count, first, second):
    """‖E x − E y‖² (``second`` non-empty) or ‖E x‖², for the chunks ``first`` of x and ``second`` of y."""
    value = _mean_sq(k[np.ix_(first, first)], square[first], count[first])
    if len(second):
        value += _mean_sq(k[np.ix_(second, second)], square[second], count[second])
        value -= 2 * k[np.ix_(first, second)].sum() / (count[first].sum() * count[second].sum())
    return value


def _jackknife(statistic, chunks):
    """Delete-one-chunk jackknife variance of ``statistic(kept chunk indices)``."""
    if chunks < 2:
        return math.nan
    values = np.array([statistic([a for a in range(chunks) if a != b]) for b in range(chunks)])
    return (chunks - 1) / chunks * ((values - values.mean()) ** 2).sum()


def squared_norm(first, second=None, level=0.9):
    """``(estimate, low, high, se)``: unbiased ‖E x − E y‖² (or ‖E x‖² without ``second``) with its ``level``
    interval, from two :class:`Streamed` of independent draws (§7)."""
    parts = [first] + ([second] if second is not None else [])
    k = gram(*parts)
    square = np.concatenate([p.square for p in parts])
    count = np.concatenate([p.count for p in parts])
    if any(p.count.sum() < 2 or p.count.min() < 1 for p in parts):
        raise ValueError("every chunk needs an item and every batch two items")
    m = first.chunks
    x, y = list(range(m)), list(range(m, len(count)))
    estimate = float(_estimate(k, square, count, x, y))
    variances, dofs = [_jackknife(lambda keep: _estimate(k, square, count, keep, y), m)], [m - 1]
    if second is not None:
        variances.append(_jackknife(lambda keep: _estimate(k, square, count, x, [m + a for a in keep]),
                                    second.chunks))
        dofs.append(second.chunks - 1)
    variance = sum(variances)
    if not math.isfinite(variance) or variance <= 0:
        return estimate, -math.inf, math.inf, math.inf
    dof = variance ** 2 / sum(v ** 2 / d for v, d in zip(variances, dofs) if v > 0)  # Satterthwaite
    half = float(stats.t.ppf((1 + level) / 2, dof)) * math.sqrt(variance)
    return estimate, estimate - half, estimate + half, math.sqrt(variance)


def max_with_se(values, rng, resamples=200):
    """``(max, bootstrap standard error of the max)`` of a sample (G's sup estimate, §7)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return math.nan, math.nan
    boot = rng.choice(values, size=(resamples, values.size)).max(1)
    return float(values.max()), float(boot.std())
