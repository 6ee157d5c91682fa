"""Vectorised async-GRPO sweeps over (τ, η, seed) into a results store (THEORY.md §6 schema).

One compiled function ``jit(vmap_η(vmap_seed(run)))`` serves the whole grid: τ
is traced too, so no grid point retraces. Each τ is one part of the store
(:class:`results.SweepStore`), written atomically when it finishes, so an
interrupted sweep resumes at the first unfinished τ.
"""

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from results import SweepStore, complete, finished_store, to_dataset
from synthetic import xla
from synthetic.simulate import RunConfig, make_run
from synthetic.tasks import TASKS, make_task
from theory.metrics import SWEEP_DIMS

DEFAULT_ETAS = {
    "bandit": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
    "contextual": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
    "autoregressive": (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0),
}
"""η grids in each task's own units, from slow learning to the largest steps tried."""


@dataclass(frozen=True)
class SweepConfig:
    """A synthetic sweep: the task, the GRPO knobs, the optimiser and the (τ, η, seed) grid."""

    task: str = "autoregressive"
    """``bandit``, ``contextual`` or ``autoregressive`` (see :mod:`synthetic.tasks`)."""
    optimizer: str = "sgd"
    """``sgd`` or ``adam``."""
    beta1: float = 0.9
    """Adam's momentum β1."""
    taus: tuple = (1, 2, 4, 8, 16)
    """Staleness / reuse factors τ."""
    etas: tuple = DEFAULT_ETAS["autoregressive"]
    """Learning rates η."""
    seeds: int = 16
    """Seeds per cell: ``seed, seed+1, …``."""
    seed: int = 0
    """First seed; also seeds the task's prompts and features."""
    steps: int = 2000
    """Learner steps T per run."""
    batch: int = 16
    """Groups per rollout batch B."""
    group: int = 8
    """Group size n."""
    eps: float = 0.2
    """Clip ε."""
    kappa: float = 0.0
    """KL coefficient κ (exact KL to θ_0)."""
    dual_clip: float | None = None
    """Dual-clip constant c > 1 + ε; none: standard clip."""
    clip_norm: float | None = None
    """Global gradient-norm clip; none: off."""
    reuse: str = "whole"
    """``whole`` batch for each of the τ steps, or τ disjoint ``slices``."""
    exact_every: int = 50
    """Exact population metrics (val_reward, kl_ref, trunc_prob, bias_norm) every this many steps."""
    lemma1: bool = True
    """Record Lemma 1's bias_bound beside bias_norm at every exact evaluation."""
    ess_base: float | None = None
    """ESS-scaled learning rate η·min(1, ess/ess_base) (the VCPO baseline); none: fixed η."""

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task {self.task!r} is not one of {', '.join(TASKS)}")
        if not self.taus or min(self.taus) < 1:
            raise ValueError(f"tau values {self.taus} must all be ≥ 1")
        if not self.etas or not all(np.isfinite(self.etas)) or min(self.etas) <= 0:
            raise ValueError(f"eta values {self.etas} must all be finite and > 0")
        if self.seeds < 1:
            raise ValueError(f"seeds = {self.seeds} must be ≥ 1")
        if self.group < 2:
            raise ValueError(f"group size {self.group} must be ≥ 2")
        if not self.eps > 0:
            raise ValueError(f"eps = {self.eps} must be > 0")
        if self.kappa < 0:
            raise ValueError(f"kappa = {self.kappa} must be ≥ 0")
        if self.dual_clip is not None and not self.dual_clip > 1 + self.eps:
            raise ValueError(f"dual clip {self.dual_clip} must be > 1 + eps")
        self.run_config()

    def run_config(self):
        """The part of the config fixed across the grid, as the simulator takes it."""
        return RunConfig(self.steps, self.batch, self.optimizer, self.beta1, self.clip_norm, self.reuse,
                         self.exact_every, self.lemma1, self.ess_base)

    @classmethod
    def preset(cls, task="autoregressive", quick=False, **overrides):
        """The sweep ``repro figures`` runs per task; ``quick`` is a small grid for tests and CI."""
        if quick:
            base = dict(taus=(1, 2, 4), etas=DEFAULT_ETAS[task][::3], seeds=2, steps=100, exact_every=10)
        else:
            base = dict(taus=(1, 2, 4, 8, 16), etas=DEFAULT_ETAS[task], seeds=8, steps=1000, exact_every=50)
        return cls(task=task, **{**base, **overrides})


def sweep_function(config):
    """``f(etas [E], tau, seeds [S]) -> {metric: [E, S, T]}``, compiled once for the whole grid.

    Cached on what the compiled function depends on, so sweeps that differ only
    in their grid (τ, η, seed values) share one compilation.
    """
    return _grid_function(config.task, config.group, config.eps, config.kappa, config.dual_clip, config.seed,
                          config.run_config())


def grid(run):
    """``run(eta, tau, seed)`` → ``f(etas [E], tau, seeds [S]) -> {metric: [E, S, T]}``: η and seeds vmapped."""
    return jax.vmap(jax.vmap(run, in_axes=(None, None, 0)), in_axes=(0, None, None))


@functools.lru_cache(maxsize=8)
def _grid_function(task_name, group, eps, kappa, dual_clip, seed, run_config):
    task = make_task(task_name, group, eps, kappa, dual_clip, seed)
    return xla.jit(grid(make_run(task, run_config)))


def _tau_dataset(config, tau, metrics):
    seeds = config.seed + np.arange(config.seeds)
    variables = {name: (SWEEP_DIMS, np.asarray(value)[None]) for name, value in metrics.items()}
    coords = {"tau": [tau], "eta": list(config.etas), "seed": seeds, "step": np.arange(config.steps)}
    return to_dataset(variables, coords, {**dataclasses.asdict(config), "engine": "synthetic"}, config.seed)


def run_sweep(config, out_path, progress=True, executor="local", workers=None, address=None):
    """Run (or resume, or reuse) the sweep and return its store, written at ``out_path``.

    A finished store with the same config is returned as it is; finished τ parts
    of an interrupted run are read back, the rest computed as one job per τ on
    ``executor`` (``local``, ``process`` or ``ray``: :func:`results.run_jobs`).
    The job is a whole τ on every executor, because vmapping over fewer η
    changes the numbers in the last bits (measured): so every executor writes
    the same store, and the local path keeps one call per τ.
    """
    store_config = {**dataclasses.asdict(config), "engine": "synthetic"}
    existing = finished_store(out_path, store_config)
    if existing is not None:
        return existing
    store = SweepStore(out_path, store_config)
    path, x64 = str(Path(out_path).resolve()), bool(jax.config.jax_enable_x64)
    jobs = [({"tau": int(tau)}, (tau_job, (config, int(tau), path, x64))) for tau in config.taus]
    return complete(store, jobs, executor, workers, address, progress, f"synthetic {config.task} sweep")


def tau_job(config, tau, out_path, x64):
    """One executor job: every (η, seed) run at ``tau``, saved as that τ's part of the store at ``out_path``."""
    jax.config.update("jax_enable_x64", x64)  # a spawned worker starts in float32
    seeds = jnp.asarray(config.seed + np.arange(config.seeds))
    metrics = sweep_function(config)(jnp.asarray(config.etas, dtype=float), tau, seeds)
    store = SweepStore(out_path, {**dataclasses.asdict(config), "engine": "synthetic"})
    store.save(_tau_dataset(config, tau, jax.device_get(metrics)), tau=tau)
