"""Hand-built sweep stores for the analysis tests: named arrays on (tau, eta, seed, step)."""

import numpy as np
import xarray as xr

from theory.metrics import SWEEP_DIMS


def sweep_dataset(taus, etas, per_step, per_run=None, steps=None):
    """A store from ``{name: (tau, eta, seed, step) array}`` and ``{name: (tau, eta, seed) array}``; ``steps``: the
    step coordinate (default 0, 1, 2, …)."""
    shape = np.shape(per_step["reward"])
    variables = {name: (SWEEP_DIMS, np.asarray(values, dtype=float)) for name, values in per_step.items()}
    variables |= {name: (SWEEP_DIMS[:3], np.asarray(values, dtype=float)) for name, values in (per_run or {}).items()}
    steps = list(range(shape[3])) if steps is None else list(steps)
    coords = {"tau": list(taus), "eta": list(etas), "seed": list(range(shape[2])), "step": steps}
    return xr.Dataset(variables, coords=coords, attrs={"config": "{}"})


def one_run(tau=1, steps=None, **series):
    """A store of one run (τ given, η = 1, one seed) from 1-D series (``steps``: their step coordinate)."""
    return sweep_dataset([tau], [1.0], {k: np.asarray(v, dtype=float)[None, None, None] for k, v in series.items()},
                         steps=steps)
