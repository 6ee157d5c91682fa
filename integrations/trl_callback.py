"""TRL integration: callbacks that record docs/theory.md §6 on a ``trl.GRPOTrainer`` run, and warn before a collapse.

Attach it and train as usual; the run becomes one cell of a results store on
dims ``(tau, eta, seed, step)`` (:data:`theory.metrics.SWEEP_DIMS`, the layout
of ``repro sweep``), which ``repro analyze``, ``repro fit`` and the figures read::

    from integrations.trl_callback import StalenessProbe
    trainer = GRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=...,
                          callbacks=[StalenessProbe(out="run.nc", write_every=50)])
    trainer.train()   # or trainer.add_callback(StalenessProbe(out="run.nc", seed=1)) before train()

Runs at other η, τ or seeds combine into one sweep store with ``repro combine``
(:func:`integrations.combine.combine_stores`). :class:`StalenessGuard` is a
probe that also runs the collapse early warning (:mod:`analysis.warning`)
every step and logs the η the rule suggests when it fires.

Recorded per learner (optimizer) step t = 0 … T−1, with τ from
:func:`integrations.staleness.trl` on the trainer's knobs and η =
``args.learning_rate`` (the peak of a schedule):

* from flat parameter snapshots: ``drift`` ‖θ_t − θ_0‖, ``stale_drift`` ‖θ_t − β_t‖
  with β_t the weights that generated the batch of step t (§3 (12)), ``grad_cos``
  cos(u_t, u_{t−1}), ``update_norm`` ‖θ_{t+1} − θ_t‖/η, and ``staleness`` τ_t;
* from the gradients before each optimizer step: ``raw_grad_cos`` cos(ĝ_t, ĝ_{t−1})
  of consecutive surrogate gradients (after clipping, which scales the whole
  vector and so leaves the cosine alone). Under Adam ``grad_cos`` sits near 1
  whatever happens; ``raw_grad_cos`` shows the alignment before a collapse;
* from TRL's logs, named by :data:`integrations.logs.CROSSWALK`: ``reward`` (TRL
  logs a generation batch's mean once, at the step that generates it; the batch
  is consumed until the next generation, so the value is carried to those steps),
  ``clip_frac`` (``clip_ratio/region_mean``, which counts only ratios whose clip
  is active: a lower bound of §6's fraction outside [1−ε, 1+ε]), ``kl_ref``
  (``kl``, logged only when ``beta`` ≠ 0) and ``val_reward`` (``eval_reward``, at
  the step whose weights were evaluated);
* ``ess`` is NaN: GRPOTrainer does not log the ratios' effective sample size.
  ``bias_norm`` needs fresh rollouts (§7) and is not recorded;
* collapse (§6, :mod:`theory.collapse`): ``nan_step`` is the first step with
  non-finite weights (−1 if none); training stops there and, as in ``llm/``, every
  series is NaN from it to ``max_steps`` (a divergence, never censored). :attr:`StalenessProbe.collapse_step` is
  t* of the reward so far; ``stop_on_collapse`` stops training once it is found.

The probe makes the trainer log every step: TRL averages its metrics over the
logging window, which would blur the per-step series.

Memory: the snapshots are flat float32 copies of the trainable parameters on
``device`` (default CPU), five between steps (θ_0, β, θ_t, u_{t−1}, ĝ_{t−1}) and at
most eight while a step is measured (θ_{t+1}, u_t and a norm's temporary): 32 bytes
per parameter at peak, 6 MB for the tiny Llama, ≈40 GB of host memory for a 1.2B
model. Under PEFT only the adapters are trainable, so drift is in adapter space.

Multi-process: the parameter snapshots live on the main process, which alone
writes the store; every rank records the (reduced) logs and checks for NaN
weights, so all ranks stop together. That is exact under DDP and DeepSpeed
ZeRO-1/2, where every rank holds the full weights. ZeRO-3 and FSDP shard the
weights, and gathering them every step would undo the memory sharding saves, so
the probe refuses them with a one-line error, as it does ``AsyncGRPOTrainer``
(weight syncs follow a queue, not a fixed schedule), generation windows that
straddle optimizer steps, and resumed runs.
"""

import logging
import math
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback
from transformers.integrations import is_deepspeed_zero3_enabled

from analysis.events import censor_window
from analysis.warning import EarlyWarning, Thresholds
from integrations.logs import CROSSWALK
from integrations.staleness import trl as trl_staleness
from results import to_dataset, write_atomic
from analysis import events as collapse
from theory.metrics import SWEEP_DIMS, cosine, l2_norm

log = logging.getLogger(__name__)

PER_STEP = ("reward", "val_reward", "grad_cos", "raw_grad_cos", "drift", "stale_drift", "clip_frac", "ess", "kl_ref",
            "update_norm", "staleness")
"""Variables on ``(tau, eta, seed, step)``; ``nan_step`` is on ``(tau, eta, seed)``."""

KNOBS = ("steps_per_generation", "num_iterations", "gradient_accumulation_steps")
"""The GRPOConfig fields that set τ (:func:`integrations.staleness.trl`)."""


def behaviour_step(t, window, accumulation):
    """The step whose weights generated the first micro-batch of step t (β_t = θ of that step).

    GRPOTrainer generates at every ``window`` = steps_per_generation·num_iterations
    micro-steps and steps the optimizer every ``accumulation`` micro-steps.
    """
    micro = t * accumulation
    return (micro - micro % window) // accumulation


class StalenessProbe(TrainerCallback):
    """Records docs/theory.md §6 on a ``trl.GRPOTrainer`` run into the results store at ``out``.

    ``seed``: the store's seed coord (default ``args.seed``); ``write_every``: also
    write the store every k steps, so a crashed run keeps its prefix (0: at the end
    only); ``device``: where the parameter snapshots live; ``stop_on_collapse``:
    stop training once the reward has collapsed (§6).
    """

    def __init__(self, out, seed=None, write_every=0, device="cpu", stop_on_collapse=False):
        if isinstance(write_every, bool) or not isinstance(write_every, int) or write_every < 0:
            raise ValueError(f"write_every = {write_every!r} must be an integer ≥ 0")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"seed = {seed!r} must be an integer")
        self.out = Path(out)
        self.seed = seed
        self.write_every = write_every
        self.device = torch.device(device)
        self.stop_on_collapse = stop_on_collapse

    # ------------------------------------------------------------ trainer events

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        _check(args, state, model)
        self.staleness = trl_staleness({knob: getattr(args, knob) for knob in KNOBS})
        self.window = args.steps_per_generation * args.num_iterations
        self.accumulation = args.gradient_accumulation_steps
        self.eta = float(args.learning_rate)
        self.run_seed = args.seed if self.seed is None else self.seed
        self.horizon = state.max_steps
        self.config = {"source": "trl GRPOTrainer, integrations.trl_callback.StalenessProbe",
                       "staleness": self.staleness.as_dict(), "trl_args": args.to_dict()}
        self.main = state.is_world_process_zero
        self.values = {name: {} for name in PER_STEP}
        self.nan_step = -1
        self.batch_reward = None
        self.logged = 0  # global step whose train log was handled; an eval log at step 0 maps val_reward only
        self.params = [p for p in model.parameters() if p.requires_grad]
        if self.main:
            self.theta0 = self._snapshot()
            self.theta, self.beta, self.previous = self.theta0.clone(), self.theta0.clone(), None
            self.previous_grad = None

    def on_step_begin(self, args, state, control, **kwargs):
        if not self.main:
            return
        t = state.global_step
        version = behaviour_step(t, self.window, self.accumulation)
        if version == t:  # this step generates a fresh batch: §3's weight sync
            self.beta.copy_(self.theta)
        self._record(t, drift=l2_norm(self.theta - self.theta0), stale_drift=l2_norm(self.theta - self.beta),
                     staleness=t - version)

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if not self.main:
            return
        grad = self._snapshot(grads=True)
        if self.previous_grad is not None:
            self._record(state.global_step, raw_grad_cos=cosine(grad, self.previous_grad))
        self.previous_grad = grad

    def on_step_end(self, args, state, control, **kwargs):
        # Every rank decides alike (logging gathers across processes; a rank that stops alone hangs the others).
        control.should_log = True
        t = state.global_step - 1
        if not torch.stack([torch.isfinite(p).all() for p in self.params]).all():
            self.nan_step = min(t + 1, self.horizon - 1)  # as llm/probes.Recorder.collapse
            control.should_training_stop = True  # a policy with NaN weights cannot sample
            return
        if not self.main:
            return
        after = self._snapshot()
        update = after.sub(self.theta).div_(self.eta)
        self._record(t, update_norm=l2_norm(update))
        if self.previous is not None:
            self._record(t, grad_cos=cosine(update, self.previous))
        self.theta, self.previous = after, update

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:  # every rank records the logs (TRL reduces them across ranks), so all stop on a collapse
            return
        t = state.global_step - 1
        for ours, theirs in CROSSWALK["trl"].keys.items():
            name = next((n for n in theirs if logs.get(n) is not None), None)
            if name is not None:
                # evaluation reads the weights after step t; training metrics belong to step t itself
                self._record(t + 1 if ours == "val_reward" else t, **{ours: logs[name]})
        if state.global_step == self.logged:  # an eval or end-of-training log of a step already handled
            return
        self.logged = state.global_step
        if "reward" in logs:  # this step generated a batch (TRL logs None when none of its rewards is a number)
            self.batch_reward = np.nan if logs["reward"] is None else float(logs["reward"])
        elif self.batch_reward is not None:
            self.values["reward"].setdefault(t, self.batch_reward)
        if self.stop_on_collapse and self.collapse_step >= 0:
            control.should_training_stop = True
        if self.main and self.write_every and state.global_step % self.write_every == 0:
            self.write(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        if self.main:
            self.write(self.horizon if self.nan_step >= 0 else state.global_step)

    # ------------------------------------------------------------ results

    @property
    def collapse_step(self):
        """t* (§6) of the reward so far, with the analysis' censor window W(τ) of the run's horizon; −1 if none."""
        reward = self.series(self.logged, ("reward",))["reward"]
        return int(collapse.collapse_step(reward, censor_window(self.horizon, self.staleness.tau)))

    def series(self, steps, names=PER_STEP):
        """``names`` (default: all of :data:`PER_STEP`) as [steps] arrays, NaN where not recorded."""
        arrays = {name: np.full(steps, np.nan) for name in names}
        for name in names:
            for t, value in self.values[name].items():
                if t < steps:
                    arrays[name][t] = value
        if self.nan_step >= 0:  # as llm/probes: every series is NaN from the divergence on
            for name, values in arrays.items():
                values[self.nan_step:] = np.nan
        return arrays

    def dataset(self, steps):
        """The first ``steps`` steps as a store Dataset on ``(tau, eta, seed, step)``."""
        variables = {name: (SWEEP_DIMS, values[None, None, None, :]) for name, values in self.series(steps).items()}
        variables["nan_step"] = (SWEEP_DIMS[:3], np.array([[[self.nan_step]]]))
        coords = {"tau": [self.staleness.tau], "eta": [self.eta], "seed": [self.run_seed], "step": np.arange(steps)}
        return to_dataset(variables, coords, self.config, self.run_seed)

    def write(self, steps):
        """Write the first ``steps`` steps to ``out`` atomically."""
        write_atomic(self.dataset(steps), self.out)

    # ------------------------------------------------------------ internals

    def _record(self, t, **values):
        for name, value in values.items():
            self.values[name][t] = float(value)

    def _snapshot(self, grads=False):
        # copy_ per tensor converts dtype and device in place: no full-size float32 temporary on the GPU
        flat = torch.zeros(sum(p.numel() for p in self.params), dtype=torch.float32, device=self.device)
        offset = 0
        for p in self.params:
            source = p.grad if grads else p
            if source is not None:  # a parameter the loss did not reach has no gradient: 0
                flat[offset:offset + p.numel()].copy_(source.detach().reshape(-1))
            offset += p.numel()
        return flat


def _check(args, state, model):
    """One-line errors for the runs the probe cannot measure (see the module docstring)."""
    if not all(hasattr(args, knob) for knob in KNOBS):
        raise ValueError(f"StalenessProbe needs a trl GRPOConfig, not {type(args).__name__}")
    if hasattr(args, "max_staleness"):
        raise ValueError("StalenessProbe supports GRPOTrainer, not AsyncGRPOTrainer (max_staleness is set)")
    if state.global_step:
        raise ValueError(f"StalenessProbe cannot follow a resumed run (global_step = {state.global_step} at start)")
    if not (math.isfinite(args.learning_rate) and args.learning_rate > 0):
        raise ValueError(f"learning_rate = {args.learning_rate!r} must be a finite number > 0")
    window, accumulation = args.steps_per_generation * args.num_iterations, args.gradient_accumulation_steps
    if window % accumulation and accumulation % window:
        raise ValueError(
            f"steps_per_generation·num_iterations = {window} and gradient_accumulation_steps = {accumulation} "
            "do not divide one another: optimizer steps straddle rollout batches (TRL PR #3493)"
        )
    sharded = any(hasattr(p, "ds_id") or type(p).__name__ == "DTensor" for p in model.parameters())
    if args.fsdp or is_deepspeed_zero3_enabled() or sharded:
        raise ValueError("StalenessProbe needs the full weights on the main process: FSDP and ZeRO-3 shard them")


class StalenessGuard(StalenessProbe):
    """A :class:`StalenessProbe` that also warns before a collapse (:class:`analysis.warning.EarlyWarning`).

    ``thresholds``: an :class:`analysis.warning.Thresholds` (``repro warn --calibrate`` writes one from a
    sweep); else ``constants`` with ``r_clip`` and ``R`` set them to ``fraction`` of those radii. ``constants``
    with ``c_loc``/``c_hor`` (``repro fit``) also set the suggested η. On the first alarm the guard logs its
    reason and the suggested η (logger ``integrations.trl_callback``), keeps it in :attr:`alarm` and in the
    store's config, and with ``stop_on_alarm`` stops training.
    """

    def __init__(self, out, thresholds=None, constants=None, fraction=0.5, stop_on_alarm=False, **probe):
        super().__init__(out, **probe)
        constants = dict(constants or {})
        if thresholds is None:
            if "r_clip" not in constants and "R" not in constants:
                raise ValueError("StalenessGuard needs thresholds (repro warn --calibrate) or constants with r_clip "
                                 "and R")
            thresholds = Thresholds.from_constants(constants.get("r_clip"), constants.get("R"), fraction)
        self.thresholds, self.constants, self.stop_on_alarm = thresholds, constants, stop_on_alarm
        self.alarm = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        super().on_train_begin(args, state, control, model=model, **kwargs)
        self.warning = EarlyWarning(self.thresholds, self.staleness.tau, self.eta, self.horizon, self.constants)
        self.fed = 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        super().on_log(args, state, control, logs=logs, **kwargs)
        if not self.main or self.alarm is not None:
            return
        while self.fed < state.global_step:  # every finished step once, with all its metrics in
            t = self.fed
            self.alarm = self.warning.update(t, **{name: self.values[name].get(t) for name in GUARDED})
            self.fed += 1
            if self.alarm is not None:
                log.warning("StalenessGuard: collapse warning at %s", self.alarm.reason)
                self.config["alarm"] = self.alarm.as_dict()
                control.should_training_stop = control.should_training_stop or self.stop_on_alarm
                return


GUARDED = ("stale_drift", "drift", "clip_frac", "ess", "raw_grad_cos", "grad_cos", "update_norm")
"""The recorded series the guard feeds to the early warning."""
