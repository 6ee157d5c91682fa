"""Reading results stores for the analysis: the sweep layout (docs/theory.md §6), all but ``reward`` optional.

Stores written by other tools (imported logs, planted stores, the TRL callback)
may hold only ``reward``; every accessor here returns ``None`` for a variable
that is absent or all NaN, and the analysis reports it as "not measured".
"""

from pathlib import Path

import numpy as np

from results.store import StoreError, open_store
from theory.metrics import SWEEP_DIMS

RUN_DIMS = SWEEP_DIMS[:3]
"""Dims of a per-run variable (``nan_step``, the ``const_*`` constants)."""


def load_sweep(path):
    """Open a sweep store; a one-line :class:`StoreError` when it is not one."""
    ds = open_store(Path(path), required=("reward",), dims=SWEEP_DIMS)
    if set(ds.reward.dims) != set(SWEEP_DIMS):
        raise StoreError(f"results store {path}: reward has dims {ds.reward.dims}, expected {SWEEP_DIMS}")
    if not np.isfinite(ds.reward.values).any():
        raise StoreError(f"results store {path} has no finite reward")
    return ds


def series(ds, name):
    """Per-step variable ``name`` as a float array on ``(tau, eta, seed, step)``; None when absent or all NaN."""
    return _array(ds, name, SWEEP_DIMS)


def per_run(ds, name):
    """Per-run variable ``name`` (e.g. ``const_U``) as a float array on ``(tau, eta, seed)``; None when absent."""
    return _array(ds, name, RUN_DIMS)


def projections(ds):
    """``theta_proj`` as ``(tau, eta, seed, step, proj)`` floats (P(θ_t − θ_0), docs/theory.md §6), or None."""
    return _array(ds, "theta_proj", (*SWEEP_DIMS, "proj"))


def _array(ds, name, dims):
    if name not in ds.data_vars or set(ds[name].dims) != set(dims):
        return None
    values = ds[name].transpose(*dims).values.astype(float)
    return values if np.isfinite(values).any() else None


def grid(ds):
    """``(taus, etas, steps)`` of a sweep store as float arrays."""
    return ds.tau.values.astype(float), ds.eta.values.astype(float), ds.step.values.astype(float)

