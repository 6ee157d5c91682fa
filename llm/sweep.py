"""Sweeps of the llm engine over τ × η × seed into one results store (``theory.metrics.SWEEP_DIMS``).

Every finished (τ, η, seed) run is written as a part by :class:`results.SweepStore`,
so an interrupted sweep resumes where it stopped; the store holds every name of
:data:`llm.probes.PER_STEP` on dims ``(tau, eta, seed, step)`` and ``nan_step``
on ``(tau, eta, seed)``. Each run is one job of :func:`results.run_jobs`, so the
runs can go to a process pool or to Ray.
"""

import dataclasses
from pathlib import Path

import numpy as np
import torch

from llm.config import GRPOConfig, ModelConfig, RunConfig, TaskConfig, WarmstartConfig
from llm.model import check_weights
from llm.pipeline import check, train
from llm.tasks import make_task
from results import SweepStore, complete, finished_store, to_dataset
from theory.metrics import SWEEP_DIMS


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    taus: tuple = (1, 2, 4)
    """Staleness / reuse factors τ."""
    etas: tuple = (1e-4, 3e-4, 1e-3)
    """Learning rates η."""
    seeds: tuple = (0,)
    """Seeds; each seed has its own warm start."""
    steps: int = 12
    """Learner steps T per run."""
    model: ModelConfig = ModelConfig()
    """The policy."""
    task: TaskConfig = TaskConfig()
    """The task."""
    warmstart: WarmstartConfig = WarmstartConfig()
    """The supervised start."""
    grpo: GRPOConfig = GRPOConfig()
    """The GRPO learner."""

    def runs(self):
        """The :class:`RunConfig` of every grid point, τ-major."""
        return [RunConfig(tau, eta, seed, self.steps, self.model, self.task, self.warmstart, self.grpo)
                for tau in self.taus for eta in self.etas for seed in self.seeds]


def preset(quick, size="small"):
    """The standard grids on the tiny Llama of width ``size``: ``quick`` (seconds) or full (minutes).

    η reaches 0.3 because AdamW on the tiny Llama loses all reward within a few
    rollout batches there (measured: η = 0.3, τ = 4), so the grid spans stable
    to collapsing cells.
    """
    model = ModelConfig("tiny", size)
    if quick:
        return SweepConfig((1, 4), (1e-3, 3e-1), (0,), 12, model, grpo=GRPOConfig(val_every=6, bias_every=6))
    return SweepConfig((1, 2, 4, 8), tuple(np.geomspace(1e-4, 3e-1, 7).round(8)), (0, 1, 2), 120, model,
                       grpo=GRPOConfig(val_every=10, bias_every=30))


def run_dataset(run, series, nan_step, config):
    """One run as a store Dataset on dims ``(tau, eta, seed, step)``."""
    variables = {name: (SWEEP_DIMS, values[None, None, None, :]) for name, values in series.items()}
    variables["nan_step"] = (SWEEP_DIMS[:3], np.array([[[nan_step]]]))
    coords = {"tau": [run.tau], "eta": [run.eta], "seed": [run.seed], "step": np.arange(run.steps)}
    return to_dataset(variables, coords, config, run.seed)


def run_sweep(config, out_path, progress=True, executor="local", workers=None, address=None, threads=None):
    """Run every grid point not already finished, then combine the parts at ``out_path``; returns the Dataset.

    A finished store with the same config is returned as it is.

    Each (τ, η, seed) run is one job on ``executor`` (``local``, ``process`` or
    ``ray``: :func:`results.run_jobs`), using ``threads`` torch threads (default:
    this process's count).
    """
    runs = config.runs()
    for run in runs:
        check(run)
    make_task(config.task)  # a bad task file fails here, before any run
    if Path(config.model.name).is_dir():
        check_weights(config.model.name, config.model.allow_pickle)
    existing = finished_store(out_path, config)
    if existing is not None:
        return existing
    store = SweepStore(out_path, config)
    path, threads = str(Path(out_path).resolve()), threads or torch.get_num_threads()
    jobs = [(_point(run), (run_job, (run, config, path, threads))) for run in runs]
    return complete(store, jobs, executor, workers, address, progress, "llm sweep")


def _point(run):
    """The grid point of ``run``, as its part is keyed in the store."""
    return {"tau": run.tau, "eta": float(run.eta), "seed": run.seed}


def run_job(run, config, out_path, threads):
    """One executor job: train ``run`` and save it as its part of the store at ``out_path``."""
    torch.set_num_threads(threads)  # a spawned worker would otherwise take every core
    series, nan_step = train(run)
    SweepStore(out_path, config).save(run_dataset(run, series, nan_step, config), **_point(run))
