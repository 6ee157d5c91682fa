"""The local constants G, U, L_D, L_β and r_clip of a model (docs/theory.md §2, §7), measured on a run of it.

"Local" means over the region a run actually visits: a short GRPO run from the model's weights is probed at
the last step of every sync cycle (lag τ − 1), so every pair (θ_t, β_t) is a real stale pair of training,
and the constants are those :meth:`llm.probes.Recorder.constants` records for every sweep run:

* G (7): the largest per-group gradient norm, at the stale β (``G_stale``, Lemma 1's) and on-policy (``G_on``);
* L_β (10): the secant gap ‖E_{D_θ}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]‖/‖θ − β‖ with the gap's sampling noise removed;
* L_D (9): the group-level TV(D_β, D_θ)/‖θ − β‖;
* U (8): max_t ‖θ_{t+1} − θ_t‖/η; the region: the 90 % quantile of the run's stale drifts;
* r_clip (31): the stale drift at which the step's ``clip_frac`` first reaches 5 %.

Each comes with a standard error and the number of samples behind it, and C_b = 2 G L_D + L_β (Lemma 1).
"""

import dataclasses
import time

import numpy as np

from llm.config import GRPOConfig, ModelConfig, RunConfig, TaskConfig, WarmstartConfig
from llm.model import load
from llm.pipeline import train
from llm.probes import CLIP_THRESHOLD
from theory.bounds import lemma1_constant


@dataclasses.dataclass(frozen=True)
class ConstantsConfig:
    run: RunConfig = RunConfig(tau=2, eta=1e-3, steps=8, grpo=GRPOConfig(prompts=8, group=8, bias_every=2,
                                                                          probe_prompts=16, val_every=100))
    """The run whose constants are measured; its probes (``bias_every``, at lag τ − 1) give G, L_β and L_D."""

    def __post_init__(self):
        if not self.run.grpo.bias_every:
            raise ValueError("constants need probes: bias_every must be > 0")
        if self.run.steps < self.run.tau:
            raise ValueError(f"steps {self.run.steps} must reach a stale step (≥ tau = {self.run.tau})")

    @classmethod
    def preset(cls, model="tiny", seed=0, device="cpu"):
        """The tiny Llama (seconds), or a pretrained model (smollm2: 2 min 42 s on two CPU cores, every
        uncertainty below 0.3× its value; measured).

        A pretrained model runs one sync cycle of τ = 3 at AdamW η = 1e-5 from its own weights (its two stale
        steps give the region and three updates U; 2 prompts × 8 per step), on one-digit addition after 2 worked
        worded examples (``shot_format="question"``; with ``a + b = c`` examples, where the model starts higher,
        the same probe measured L_β = 27 ± 24, its secant gap lost in the noise), and is probed once, at lag 2,
        with 12 fresh and 12 stale groups of 8. The design is set by cost: on two cores one forward and backward
        of a 2-shot sequence takes ~0.7 s, so the probe's per-group gradients dominate, and 8-shot prompts (3×
        longer) would not fit 10 minutes. The learner backpropagates one group at a time.
        """
        if model == "tiny":
            return cls(dataclasses.replace(cls().run, seed=seed, model=ModelConfig("tiny", device=device)))
        grpo = GRPOConfig(prompts=2, group=8, max_new_tokens=4, val_every=100, bias_every=3, probe_prompts=12,
                          micro_batch=8)
        task = TaskConfig(heldout=8, shots=2, shot_format="question")
        return cls(RunConfig(3, 1e-5, seed, 3, ModelConfig(model, device=device), task, WarmstartConfig(steps=0), grpo))


def _entry(constants, name, samples, **extra):
    return {"value": constants[f"const_{name}"], "uncertainty": constants[f"const_{name}_se"], "samples": samples,
            **extra}


def estimate_constants(config, progress=False):
    """Measure the constants on ``config.run``; a JSON-ready dict of ``{value, uncertainty, samples}`` entries.
    ``progress``: a bar over the run's learner steps on stderr."""
    start = time.perf_counter()
    run = config.run
    tokenizer, model = load(run.model, run.seed)
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    series, _, constants, nan_step = train(run, (tokenizer, model), progress)
    probes = int(np.isfinite(series["bias_sq"]).sum())
    groups = probes * (run.grpo.probe_prompts or run.grpo.prompts)
    steps = int(np.isfinite(series["update_norm"]).sum())
    stale = int((np.nan_to_num(series["stale_drift"]) > 0).sum())
    report = {
        "model": run.model.name, "task": run.task.kind, "parameters": parameters,
        "run": {"tau": run.tau, "eta": run.eta, "steps": run.steps, "optimizer": run.grpo.optimizer,
                "probes": probes, "nan_step": int(nan_step), "reward": float(np.nanmean(series["reward"]))},
        "region": _entry(constants, "region", stale, quantile=0.9),
        "G": _entry(constants, "G_stale", groups, at="stale β"),
        "G_on": _entry(constants, "G_on", groups),
        "L_beta": _entry(constants, "L_beta", groups, noise="removed"),
        "L_D": _entry(constants, "L_D", groups),
        "U": _entry(constants, "U", steps, eta=run.eta),
        "r_clip": _entry(constants, "r_clip", stale, threshold=CLIP_THRESHOLD),
    }
    report["C_b"] = float(lemma1_constant(report["G"]["value"], report["L_D"]["value"], report["L_beta"]["value"]))
    report["seconds"] = round(time.perf_counter() - start, 1)
    return report


def constants_table(r):
    """:func:`estimate_constants` as the text ``repro constants --model`` prints."""
    run = r["run"]
    rows = [f"{r['model']} ({r['parameters']:,} parameters) on {r['task']}: {run['steps']} steps at τ = {run['tau']}, "
            f"η = {run['eta']:g} ({run['optimizer']}), {run['probes']} probe(s) at lag τ − 1"]
    for name in ("region", "G", "G_on", "L_D", "L_beta", "U", "r_clip"):
        c = r[name]
        rows.append(f"{name:>7} = {c['value']:.4g} ± {c['uncertainty']:.2g}   ({c['samples']} samples)")
    return "\n".join(rows + [f"    C_b = 2 G L_D + L_β = {r['C_b']:.4g}   ({r['seconds']} s)"])
