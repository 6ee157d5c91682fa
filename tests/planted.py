"""Results stores with planted laws, for the analysis, fit and figure tests.

The planted truth (THEORY.md §5): a cell collapses on every seed when
``η τ > c_loc`` and on none otherwise, so ``η_max(τ) = c_loc/τ`` on a grid of
halvings; a collapsing run's reward drops to 0 at ``t* = c_hor/η · e^ε``
(ε ~ N(0, noise²)), times ``τ^c``; stable runs drift like √t, collapsing ones
like t; ``bias_norm`` is half of ``bias_bound = τη``.
"""

import numpy as np

from results.store import to_dataset, write_atomic
from theory.metrics import SWEEP_DIMS

C_LOC, C_HOR = 0.4, 40.0
TAUS = (1, 2, 4, 8)
ETAS = tuple(0.8 / 2 ** k for k in range(7))


def planted_dataset(taus=TAUS, etas=ETAS, seeds=8, steps=600, c_hor=C_HOR, tau_power=0.0, noise=0.1, seed=0,
                    c_loc=C_LOC):
    rng = np.random.default_rng(seed)
    tau = np.asarray(taus, dtype=float)[:, None, None, None]
    eta = np.asarray(etas, dtype=float)[None, :, None, None]
    shape = (len(taus), len(etas), seeds, steps)
    t = np.arange(steps, dtype=float)[None, None, None, :]
    collapsing = np.broadcast_to(eta * tau > c_loc * (1 + 1e-9), shape[:3] + (1,))
    t_star = np.round(c_hor / eta * tau ** tau_power * np.exp(noise * rng.standard_normal(shape[:3] + (1,))))
    dead = collapsing & (t >= t_star)
    reward = np.where(dead, 0.0, 0.3 + 0.4 * rng.random(shape))
    drift = np.where(collapsing, 0.01 * t, 0.01 * np.sqrt(t)) * np.exp(0.02 * rng.standard_normal(shape))
    update = 1.0 + 0.1 * rng.random(shape)
    bound = np.broadcast_to(tau * eta, shape)
    variables = {
        "reward": reward, "val_reward": reward * 0.9, "drift": drift, "update_norm": update,
        "grad_cos": np.where(collapsing, 0.9, 0.0) + 0.05 * rng.standard_normal(shape),
        "bias_norm": 0.5 * bound, "bias_bound": bound,
    }
    coords = {"tau": list(taus), "eta": list(etas), "seed": list(range(seeds)), "step": list(range(steps))}
    return to_dataset({k: (SWEEP_DIMS, v) for k, v in variables.items()}, coords,
                      {"planted": "eta_max = c_loc/tau, t* = c_hor/eta * tau^c", "tau_power": tau_power}, seed)


def planted_store(path, **kwargs):
    """Write :func:`planted_dataset` to ``path`` (netCDF) and return the path."""
    write_atomic(planted_dataset(**kwargs), path)
    return path
