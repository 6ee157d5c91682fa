"""Sweeps of the llm engine over τ × η × seed into one results store (``theory.metrics.SWEEP_DIMS``).

Every finished (τ, η, seed) run is written as a part by :class:`results.SweepStore`,
so an interrupted sweep resumes where it stopped; the store holds every name of
:data:`llm.probes.PER_STEP` on dims ``(tau, eta, seed, step)`` and ``nan_step``
on ``(tau, eta, seed)``.
"""

import dataclasses

import numpy as np
from tqdm import tqdm

from llm.config import GRPOConfig, ModelConfig, RunConfig, TaskConfig, WarmstartConfig
from llm.pipeline import check, train
from llm.tasks import make_task
from results import SweepStore, to_dataset
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


def run_sweep(config, out_path, progress=True):
    """Run every grid point not already finished, then combine the parts at ``out_path``; returns the Dataset."""
    runs = config.runs()
    for run in runs:
        check(run)
    make_task(config.task)  # a bad task file fails here, before any run
    store = SweepStore(out_path, config)
    parts = []
    for run in tqdm(runs, desc="llm sweep", unit="run", disable=not progress):
        point = {"tau": run.tau, "eta": float(run.eta), "seed": run.seed}
        part = store.load(**point)
        if part is None:
            series, nan_step = train(run)
            part = run_dataset(run, series, nan_step, config)
            store.save(part, **point)
        parts.append(part)
    return store.finish(parts)
