"""Vectorised async-GRPO sweeps over (τ, η, seed) into a results store (docs/theory.md §6 schema).

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
from synthetic.simulate import ENGINE_REVISION, RunConfig, run
from synthetic.tasks import TASKS, Family, make_task
from theory.metrics import SWEEP_DIMS

DEFAULT_ETAS = {
    "graded": (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0),
    "autoregressive": (2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0),
    "bandit": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
    "contextual": (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
}
"""η grids in each task's own units, spanning each one's transition (``graded``: docs/substrate.md)."""

DEFAULT_UPDATE_CLIP = {"graded": 0.05}
"""Clip U of the applied update per task: on ``graded`` it binds (SGD's ‖ĝ‖ is 0.1–0.3) and keeps η·U ≤ 6.4 for
η ≤ 128, under a fifth of the smallest radius at which the family collapsed (R ≈ 30, docs/substrate.md), so no
single update can carry a run out of its region. None elsewhere: the controls keep their earlier dynamics."""


@dataclass(frozen=True)
class SweepConfig:
    """A synthetic sweep: the task, the GRPO knobs, the optimiser and the (τ, η, seed) grid."""

    task: str = "graded"
    """One of :data:`synthetic.tasks.TASKS`."""
    optimizer: str = "sgd"
    """``sgd`` or ``adam``."""
    beta1: float = 0.9
    """Adam's momentum β1."""
    taus: tuple = (1, 2, 4, 8, 16)
    """Staleness / reuse factors τ."""
    etas: tuple = DEFAULT_ETAS["graded"]
    """Learning rates η."""
    seeds: int = 32
    """Seeds per cell: ``seed, seed+1, …``."""
    seed: int = 0
    """First seed; also seeds the task's prompts and features."""
    steps: int = 2000
    """Learner steps T per run."""
    batch: int = 16
    """Groups per learner step B."""
    group: int = 8
    """Group size n."""
    eps: float = 0.2
    """Clip ε."""
    kappa: float = 0.0
    """KL coefficient κ (exact KL to θ_0)."""
    dual_clip: float | None = None
    """Dual-clip constant c > 1 + ε; none: standard clip."""
    clip_norm: float | None = None
    """Global gradient-norm clip before the optimiser; none: off."""
    update_clip: float | None = None
    """Clip of the applied update ‖u_t‖ (enforces U); none: off."""
    reuse: str = "slices"
    """``slices``: τ disjoint minibatches of one rollout; ``whole``: the same minibatch τ times."""
    exact_every: int = 50
    """Population probes (val_reward, kl_ref, trunc_prob, bias_norm and bounds) every this many steps."""
    lemma1: bool = True
    """Record both bias bounds and their terms beside bias_norm at every probe."""
    ess_base: float | None = None
    """ESS-scaled learning rate η·min(1, ess/ess_base) (the VCPO baseline); none: fixed η."""
    family: Family = Family()
    """Knobs of the ``graded`` substrate (ignored by the other tasks)."""
    learner_dtype: str = "float64"
    """Precision of the learner loop (``float32``: 1.4× faster steps, measured; probes stay float64)."""
    engine_revision: int = dataclasses.field(default=ENGINE_REVISION, init=False)
    """The engine revision that runs it (:data:`synthetic.simulate.ENGINE_REVISION`): part of the recorded and hashed
    config, so a store drawn by another revision is recomputed, not reused."""

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
            raise ValueError(f"group = {self.group} must be ≥ 2")
        if not 0 < self.eps < np.inf:
            raise ValueError(f"eps = {self.eps} must be finite and > 0")
        if not 0 <= self.kappa < np.inf:
            raise ValueError(f"kappa = {self.kappa} must be finite and ≥ 0")
        if self.dual_clip is not None and not 1 + self.eps < self.dual_clip < np.inf:
            raise ValueError(f"dual_clip = {self.dual_clip} must be finite and > 1 + eps")
        self.run_config()

    def run_config(self):
        """The part of the config fixed across the grid, as the engine takes it."""
        return RunConfig(steps=self.steps, batch=self.batch, optimizer=self.optimizer, beta1=self.beta1,
                         clip_norm=self.clip_norm, update_clip=self.update_clip, reuse=self.reuse,
                         exact_every=self.exact_every, lemma1=self.lemma1, ess_base=self.ess_base,
                         learner_dtype=self.learner_dtype)

    def make_task(self):
        """The task this sweep trains on (built once per distinct task config)."""
        return _task(self.task, self.group, self.eps, self.kappa, self.dual_clip, self.seed, self.family)

    @classmethod
    def preset(cls, task="graded", quick=False, **overrides):
        """The sweep ``repro figures`` runs per task; ``quick`` is a small grid for tests and CI (seconds).

        ``etas`` (like every field) can be overridden, e.g. by a refined pass around the transition.
        """
        graded = task == "graded"
        base = dict(update_clip=DEFAULT_UPDATE_CLIP.get(task), reuse="slices" if graded else "whole",
                    learner_dtype="float32" if graded else "float64")
        if quick:
            base |= dict(taus=(1, 2, 4), etas=DEFAULT_ETAS[task][::3], seeds=2, steps=100, exact_every=10)
        else:
            base |= dict(taus=(1, 2, 4, 8, 16), etas=DEFAULT_ETAS[task], seeds=32, steps=2000, exact_every=50)
        return cls(task=task, **{**base, **overrides})


def sweep_function(config):
    """``f(etas [E], tau, seeds [S]) -> {metric: [E, S, T, ...]}``, compiled once for the whole grid.

    The compiled function takes the task as an argument and is cached on the run config alone, so sweeps that
    differ in their grid or in the task's arrays (another seed, another member of a family) share one compilation.
    """
    return functools.partial(compiled_grid(config.run_config()), config.make_task())


@functools.lru_cache(maxsize=8)
def compiled_grid(run_config):
    """``jit(grid(run_config))``, cached."""
    return xla.jit(grid(run_config))


def grid(run_config):
    """``f(task, etas [E], tau, seeds [S]) -> {metric: [E, S, T, ...]}``: η and seeds vmapped over :func:`run`."""
    one = functools.partial(_run, run_config)
    return jax.vmap(jax.vmap(one, in_axes=(None, None, None, 0)), in_axes=(None, 0, None, None))


@functools.lru_cache(maxsize=16)
def _task(*args):
    return make_task(*args)


def _run(run_config, task, eta, tau, seed):
    return run(task, run_config, eta, tau, seed)


def _tau_dataset(config, tau, metrics):
    seeds = config.seed + np.arange(config.seeds)
    variables = {name: (SWEEP_DIMS + ("proj",) * (np.ndim(value) - 3), np.asarray(value)[None])
                 for name, value in metrics.items()}
    coords = {"tau": [tau], "eta": list(config.etas), "seed": seeds, "step": np.arange(config.steps)}
    return to_dataset(variables, coords, store_config(config), config.seed)


def store_config(config):
    """What a store records (and a resumed sweep must match) of the sweep that wrote it."""
    return {**dataclasses.asdict(config), "engine": "synthetic"}


def run_sweep(config, out_path, progress=True, executor="local", workers=None, address=None):
    """Run (or resume, or reuse) the sweep and return its store, written at ``out_path``.

    A finished store with the same config is returned as it is; finished τ parts
    of an interrupted run are read back, the rest computed as one job per τ on
    ``executor`` (``local``, ``process`` or ``ray``: :func:`results.run_jobs`).
    The job is a whole τ on every executor, because vmapping over fewer η
    changes the numbers in the last bits (measured): so every executor writes
    the same store, and the local path keeps one call per τ.
    """
    recorded = store_config(config)
    existing = finished_store(out_path, recorded)
    if existing is not None:
        return existing
    store = SweepStore(out_path, recorded)
    path, x64 = str(Path(out_path).resolve()), bool(jax.config.jax_enable_x64)
    jobs = [({"tau": int(tau)}, (tau_job, (config, int(tau), path, x64))) for tau in config.taus]
    return complete(store, jobs, executor, workers, address, progress, f"synthetic {config.task} sweep")


def tau_job(config, tau, out_path, x64):
    """One executor job: every (η, seed) run at ``tau``, saved as that τ's part of the store at ``out_path``."""
    jax.config.update("jax_enable_x64", x64)  # a spawned worker starts in float32
    seeds = jnp.asarray(config.seed + np.arange(config.seeds))
    metrics = sweep_function(config)(jnp.asarray(config.etas, dtype=float), tau, seeds)
    store = SweepStore(out_path, store_config(config))
    store.save(_tau_dataset(config, tau, jax.device_get(metrics)), tau=tau)
