"""The §7 estimators of the local constants G, U, L_D, L_β and r_clip of a model at its given weights.

Everything is measured around the (warm-started) weights θ on rollout batches
sampled from θ, each estimate with its sample count and an uncertainty:

* ``G`` (7): per-group surrogate-gradient norms ``‖∇ℓ(θ; θ, z_b)‖``; the value
  is their max, with quantiles and a bootstrap standard error of the max.
* ``U`` (8): ``max_t ‖θ_{t+1} − θ_t‖ / η`` over a short GRPO run from θ.
* ``L_D`` (9): ``TV(π_θ(·|x), π_θ′(·|x)) = E_{y~π_θ}[(1 − π_θ′(y|x)/π_θ(y|x))_+]``
  per sampled completion, divided by ``s = ‖θ′ − θ‖``, along the surrogate-gradient
  direction and random directions; the value is the largest direction, and
  the group-level constant is n times it (group TV ≤ n · per-sample TV).
* ``L_β`` (10), secant form: ``‖ĝ(θ; θ′) − ĝ(θ; θ)‖ / s`` on the same samples
  (only the ratio denominator and the clip boundary move); the uncertainty is
  half the gap between the two halves of the batch.
* ``r_clip`` (31): the distance s along each direction at which the token
  ``clip_frac`` of ``π_θ′ / π_θ`` first reaches ``clip_threshold``
  (log-interpolated on a geometric grid; the smallest over directions, its
  uncertainty the width of the grid interval that brackets the crossing).
"""

import copy
import dataclasses
import math
import time

import numpy as np
import torch

from llm.config import GRPOConfig, ModelConfig, RunConfig, TaskConfig, WarmstartConfig
from llm.loss import grpo_loss, sequence_advantages
from llm.model import load
from llm.pipeline import check, train
from llm.probes import flat_params
from llm.rollout import rollout, token_logprobs
from llm.tasks import make_task
from llm.warmstart import warmstart
from theory.bounds import lemma1_constant
from theory.grpo import clip_fraction
from theory.metrics import l2_norm


@dataclasses.dataclass(frozen=True)
class ConstantsConfig:
    model: ModelConfig = ModelConfig()
    """The policy whose local constants are estimated."""
    task: TaskConfig = TaskConfig()
    """The task its rollouts solve."""
    warmstart: WarmstartConfig = WarmstartConfig()
    """The supervised start (``steps = 0`` for a pretrained model)."""
    grpo: GRPOConfig = GRPOConfig(prompts=8, group=8)
    """Batch shape (B prompts × n completions), clip ε and κ of the surrogate."""
    seed: int = 0
    """Seed of the weights (tiny), prompts, sampling and random directions."""
    radius: float = 0.01
    """s = ‖θ′ − θ‖ of the secants for L_D and L_β (the region's radius)."""
    directions: int = 2
    """Random unit directions besides the surrogate-gradient direction."""
    clip_threshold: float = 0.05
    """``clip_frac`` level that defines r_clip."""
    clip_radii: tuple = tuple(np.geomspace(1e-3, 30.0, 12).round(6))
    """Geometric grid of distances searched for r_clip."""
    eta: float = 1e-3
    """η of the short run that measures U."""
    tau: int = 2
    """τ of the short run that measures U."""
    steps: int = 6
    """Learner steps of the short run that measures U."""

    @classmethod
    def preset(cls, model="tiny", seed=0, device="cpu"):
        """Defaults for ``tiny`` (seconds), or a capped budget for a pretrained model (smollm2: minutes on CPU)."""
        if model == "tiny":
            return cls(ModelConfig("tiny", device=device), seed=seed)
        grpo = GRPOConfig(prompts=4, group=4, max_new_tokens=8, val_every=10_000)
        # a pretrained model's gradient direction clips 5% of tokens within ‖θ′ − θ‖ ≈ 1e-2 (smollm2): a smaller region
        return cls(ModelConfig(model, device=device), TaskConfig(heldout=4), WarmstartConfig(steps=0), grpo, seed,
                   radius=1e-3, directions=1, clip_radii=tuple(np.geomspace(1e-4, 1.0, 9).round(8)), eta=1e-5,
                   steps=2)


def _check(config):
    if not (math.isfinite(config.radius) and config.radius > 0):
        raise ValueError(f"radius {config.radius!r} must be finite and > 0")
    if config.directions < 0:
        raise ValueError(f"directions {config.directions} must be ≥ 0")
    if config.grpo.prompts < 2:
        raise ValueError(f"prompts {config.grpo.prompts} must be ≥ 2 (L_β splits the batch in halves)")
    if not 0 < config.clip_threshold < 1:
        raise ValueError(f"clip_threshold {config.clip_threshold} must be in (0, 1)")


def _surrogate_grad(model, batch, grpo, behaviour_logp):
    """ĝ(θ; β) of (4) on ``batch`` at the model's θ, with the behaviour log-probs given."""
    logp = token_logprobs(model, batch.input_ids, batch.attention_mask, batch.completion_mask.shape[1],
                          grpo.temperature)
    loss, _, _ = grpo_loss(logp, behaviour_logp, batch.completion_mask, sequence_advantages(batch.rewards), grpo.eps,
                           sequence_ratio=grpo.sequence_ratio)
    params = [p for p in model.parameters() if p.requires_grad]
    return -torch.cat([g.reshape(-1).float() for g in torch.autograd.grad(loss, params)])


def _shifted_logp(shifted, theta, direction, s, batch, temperature):
    """Token log-probs of the batch's completions under θ + s·v."""
    torch.nn.utils.vector_to_parameters((theta + s * direction).to(next(shifted.parameters()).dtype),
                                        shifted.parameters())
    with torch.no_grad():
        return token_logprobs(shifted, batch.input_ids, batch.attention_mask, batch.completion_mask.shape[1],
                              temperature)


def _crossing(radii, fractions, threshold):
    """``(distance, bracket)``: where ``fractions`` first reaches ``threshold`` (log-interpolated) and the
    width of the grid interval that brackets it; ``(inf, nan)`` if never, ``(radii[0], radii[0])`` if at once."""
    for i, f in enumerate(fractions):
        if f >= threshold:
            if i == 0:
                return float(radii[0]), float(radii[0])
            lo, hi, f_lo = math.log(radii[i - 1]), math.log(radii[i]), fractions[i - 1]
            return float(math.exp(lo + (hi - lo) * (threshold - f_lo) / (f - f_lo))), float(radii[i] - radii[i - 1])
    return math.inf, math.nan


def _summary(value, uncertainty, samples, **extra):
    return {"value": float(value), "uncertainty": float(uncertainty), "samples": int(samples), **extra}


def estimate_constants(config):
    """Estimate G, U, L_D, L_β, r_clip (and C_b = 2 G L_D + L_β) at the model's weights; returns a JSON-ready dict."""
    _check(config)
    start = time.perf_counter()
    grpo = config.grpo
    task = make_task(config.task)
    tokenizer, model = load(config.model, config.seed)
    warmstart(model, tokenizer, task, config.model, config.task, config.warmstart, config.seed)
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device).manual_seed(config.seed)
    rng = np.random.default_rng([config.seed, 4])
    batch = rollout(model, tokenizer, task.train(rng, grpo.prompts), grpo.group, grpo.max_new_tokens,
                    grpo.temperature, generator, version=0)
    theta = flat_params(model)
    groups = grpo.prompts

    # G: one group at a time, so a large model never holds more than two gradient vectors
    per_group = [_surrogate_grad(model, batch.rows(slice(b, b + 1)), grpo, batch.rows(slice(b, b + 1)).behaviour_logp)
                 for b in range(groups)]
    norms = np.array([float(l2_norm(g)) for g in per_group])
    on_policy = torch.stack(per_group).mean(0)
    del per_group
    boot = rng.choice(norms, size=(200, groups)).max(1)
    G = _summary(norms.max(), boot.std(), groups, q50=float(np.quantile(norms, 0.5)),
                 q90=float(np.quantile(norms, 0.9)))

    directions = {"surrogate_gradient": on_policy / max(float(l2_norm(on_policy)), 1e-30)}
    torch_rng = torch.Generator().manual_seed(config.seed + 7)
    for k in range(config.directions):
        v = torch.randn(theta.shape, generator=torch_rng).to(theta.device)
        directions[f"random_{k}"] = v / l2_norm(v)
    shifted = copy.deepcopy(model).eval().requires_grad_(False)
    s, half = config.radius, groups // 2
    halves = (batch.rows(slice(0, half)), batch.rows(slice(half, groups)))
    mask = batch.completion_mask.bool()
    l_d, l_beta, r_clip = {}, {}, {}
    for name, v in directions.items():
        logp_shift = _shifted_logp(shifted, theta, v, s, batch, grpo.temperature)
        # per-sample TV on the completions drawn from θ: E[(1 − π_θ′/π_θ)_+] with sequence probabilities
        log_ratio = ((logp_shift - batch.behaviour_logp) * mask).sum(-1)
        tv = torch.clamp(1 - torch.exp(log_ratio), min=0).cpu().numpy()
        l_d[name] = (tv.mean() / s, tv.std(ddof=1) / math.sqrt(tv.size) / s)
        gaps = []
        for part, rows in zip(halves, (slice(0, half * grpo.group), slice(half * grpo.group, None))):
            gaps.append(_surrogate_grad(model, part, grpo, logp_shift[rows])
                        - _surrogate_grad(model, part, grpo, part.behaviour_logp))
        full = (gaps[0] * half + gaps[1] * (groups - half)) / groups
        l_beta[name] = (float(l2_norm(full)) / s, abs(float(l2_norm(gaps[0]) - l2_norm(gaps[1]))) / (2 * s))
        fractions = [float(clip_fraction(torch.exp(_shifted_logp(shifted, theta, v, r, batch, grpo.temperature)
                                                   - batch.behaviour_logp)[mask], grpo.eps))
                     for r in config.clip_radii]
        r_clip[name] = _crossing(config.clip_radii, fractions, config.clip_threshold)
    del shifted

    worst_d = max(l_d, key=lambda k: l_d[k][0])
    worst_b = max(l_beta, key=lambda k: l_beta[k][0])
    samples = groups * grpo.group
    L_D = _summary(l_d[worst_d][0] * grpo.group, l_d[worst_d][1] * grpo.group, samples, direction=worst_d,
                   per_sample=float(l_d[worst_d][0]), by_direction={k: float(v[0]) for k, v in l_d.items()})
    L_beta = _summary(l_beta[worst_b][0], l_beta[worst_b][1], groups, direction=worst_b,
                      by_direction={k: float(v[0]) for k, v in l_beta.items()})
    first = min(r_clip, key=lambda k: r_clip[k][0])
    R = _summary(*r_clip[first], samples, threshold=config.clip_threshold, direction=first,
                 by_direction={k: v[0] for k, v in r_clip.items()})

    # U: a short run of the real pipeline from the same weights (the run mutates its own copy)
    run = RunConfig(config.tau, config.eta, config.seed, config.steps, config.model, config.task, config.warmstart,
                    dataclasses.replace(grpo, val_every=config.steps + 1, bias_every=0))
    check(run)
    series, nan_step = train(run, (tokenizer, model))
    updates = series["update_norm"][np.isfinite(series["update_norm"])]
    U = _summary(updates.max() if updates.size else math.nan, updates.std(ddof=1) if updates.size > 1 else math.nan,
                 updates.size, eta=config.eta, tau=config.tau, optimizer=grpo.optimizer, nan_step=int(nan_step))

    return {"model": config.model.name, "task": config.task.kind, "parameters": int(theta.numel()),
            "region": {"radius": s, "theta_norm": float(l2_norm(theta)), "directions": list(directions)},
            "G": G, "U": U, "L_D": L_D, "L_beta": L_beta, "r_clip": R,
            "C_b": float(lemma1_constant(G["value"], L_D["value"], L_beta["value"])),
            "seconds": round(time.perf_counter() - start, 1)}
