"""Per-run stores (``repro sweep`` parts, a TRL callback, imported logs) → one sweep store.

``xarray.combine_by_coords(stores)`` fails with ``MergeError`` on these stores
because each carries its own provenance attrs (``config``, ``seed``,
``created_at``), which its default ``combine_attrs="no_conflicts"`` refuses.
Dropping the conflicts is not enough either: its outer join silently pads a
run that is shorter than another, or a (τ, η, seed) cell no run filled, with
NaN rewards, which docs/theory.md §6 reads as divergence. :func:`combine_stores`
keeps every run's attrs in the combined config (``runs``), refuses two runs of
one cell, and refuses padding unless asked to trim the steps to those every
run has or to number each cell's runs 0, 1, … as its seeds.
"""

import json
from pathlib import Path

import numpy as np
import xarray as xr

from results import open_store
from results.store import make_attrs
from theory.metrics import SWEEP_DIMS


def _cells(ds):
    return [(float(t), float(e), int(s)) for t in ds.tau.values for e in ds.eta.values for s in ds.seed.values]


def combine_stores(stores, *, trim=False, renumber_seeds=False):
    """One sweep Dataset on :data:`SWEEP_DIMS` from per-run stores (paths or Datasets).

    ``trim``: keep only the steps every store has (else differing step grids are an error);
    ``renumber_seeds``: number each (τ, η) cell's runs 0, 1, … (their own seeds go to the
    per-run variable ``run_seed``), so runs made with different seeds fill one grid.
    """
    if len(stores) < 2:
        raise ValueError(f"combine needs at least two stores, got {len(stores)}")
    datasets, names = [], []
    for store in stores:
        ds = store if isinstance(store, xr.Dataset) else open_store(store, required=("reward",), dims=SWEEP_DIMS)
        missing = [d for d in SWEEP_DIMS if d not in ds.dims]
        if missing:
            raise ValueError(f"store {getattr(store, 'name', store)} lacks dim(s) {', '.join(missing)}")
        datasets.append(ds)
        names.append(str(store) if not isinstance(store, xr.Dataset) else f"dataset {len(names)}")

    seen = {}
    for name, ds in zip(names, datasets):
        for cell in _cells(ds):
            if cell in seen and not renumber_seeds:
                raise ValueError(f"{seen[cell]} and {name} both hold τ = {cell[0]:g}, η = {cell[1]:g}, "
                                 f"seed = {cell[2]} "
                                 "(--renumber-seeds numbers each cell's runs 0, 1, …)")
            seen.setdefault(cell, name)

    grids = {tuple(ds.step.values.tolist()) for ds in datasets}
    if len(grids) > 1:
        common = sorted(set.intersection(*(set(g) for g in grids)))
        if not trim:
            lengths = sorted({len(g) for g in grids})
            raise ValueError(f"the stores have different step grids ({len(grids)} grids, {lengths[0]}–{lengths[-1]} "
                             "steps): padding would read as divergence; --trim keeps the steps all share")
        if not common:
            raise ValueError("the stores share no step: nothing is left after --trim")
        datasets = [ds.sel(step=common) for ds in datasets]

    runs = []
    for name, ds in zip(names, datasets):
        config = ds.attrs.get("config", "{}")
        try:
            config = json.loads(config)
        except (TypeError, json.JSONDecodeError):
            pass
        runs.append({"store": name, "tau": ds.tau.values.tolist(), "eta": ds.eta.values.tolist(),
                     "seed": ds.seed.values.tolist(), "config": config})
    if renumber_seeds:
        datasets = _renumber(datasets)

    cells = {(t, e) for ds in datasets for t in ds.tau.values.tolist() for e in ds.eta.values.tolist()}
    taus = sorted({t for t, _ in cells})
    etas = sorted({e for _, e in cells})
    seeds = sorted({s for ds in datasets for s in ds.seed.values.tolist()})
    filled = {cell for ds in datasets for cell in _cells(ds)}
    empty = [(t, e, s) for t in taus for e in etas for s in seeds if (float(t), float(e), int(s)) not in filled]
    if empty:
        shown = ", ".join(f"(τ {t:g}, η {e:g}, seed {s})" for t, e, s in empty[:3])
        raise ValueError(f"{len(empty)} (τ, η, seed) cell(s) of the grid have no run, e.g. {shown}: they would read "
                         "as diverged" + ("" if renumber_seeds else "; --renumber-seeds may fill it"))

    bare = [ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({}) for ds in datasets]
    combined = xr.combine_by_coords(bare, combine_attrs="drop", join="outer", data_vars="all", compat="no_conflicts")
    if "nan_step" in combined:
        combined["nan_step"] = combined.nan_step.fillna(-1).astype(int)
    config = {"source": "repro combine", "trim": trim, "renumber_seeds": renumber_seeds, "runs": runs}
    return combined.assign_attrs(make_attrs(config, seed=0))


def _renumber(datasets):
    """Give each (τ, η) cell's runs the seeds 0, 1, … in store order; their own seeds become ``run_seed``."""
    counts, out = {}, []
    for ds in datasets:
        for t in ds.tau.values:
            for e in ds.eta.values:
                for s in ds.seed.values:
                    run = ds.sel(tau=[t], eta=[e], seed=[s])
                    index = counts.get((float(t), float(e)), 0)
                    counts[(float(t), float(e))] = index + 1
                    run = run.assign(run_seed=(SWEEP_DIMS[:3], np.array([[[int(s)]]])))
                    out.append(run.assign_coords(seed=[index]))
    return out


def write_combined(stores, out, **kwargs):
    """Combine ``stores`` and write the result atomically at ``out``; returns the Dataset."""
    from results import write_atomic

    combined = combine_stores(stores, **kwargs)
    write_atomic(combined, Path(out))
    return combined
