"""Per-step measurements of docs/theory.md §6 for one run, the staleness probe of §7, and the run's constants.

All norms are Euclidean over the trainable parameters flattened into one vector (§1); the tree statistics
come from :func:`theory.metrics.step_statistics` and ``theta_proj`` from :func:`theory.metrics.project`, the
definitions both engines share. A run whose loss or weights stop being finite is *collapsed*: its step is
``nan_step`` and every metric is NaN from there on, which the analysis reads as a divergence (never censored).
"""

import math

import numpy as np
import torch

from llm.bias import Streamed, max_with_se, squared_norm
from llm.loss import grpo_loss, sequence_advantages
from llm.rollout import rollout, token_logprobs
from theory.grpo import clip_fraction, effective_sample_size
from theory.metrics import PROJECTIONS, project, step_statistics

PER_STEP = ("reward", "val_reward", "grad_cos", "drift", "stale_drift", "clip_frac", "ess", "kl_ref",
            "update_norm", "raw_grad_cos", "max_neg_ratio", "staleness", "eta_scale",
            "bias_sq", "bias_sq_lo", "bias_sq_hi", "bias_norm", "probe_G", "probe_G_on", "probe_tv", "probe_gap",
            "bias_bound")
"""Recorded every learner step; ``val_reward`` every k steps and the probe terms at probe steps, NaN between."""

CONSTANTS = ("G_stale", "G_on", "L_beta", "L_D", "U", "region", "r_clip")
"""Per-run constants ``const_NAME`` (each with ``const_NAME_se``), §7, from the run's own probes and steps."""

CLIP_THRESHOLD = 0.05
"""``clip_frac`` level whose crossing defines r_clip (31)."""


def trainable(model):
    """θ's tensors: the parameters that require gradients, in the order every flat vector uses."""
    return [p for p in model.parameters() if p.requires_grad]


def flat(tensors):
    """``tensors`` flattened in order into one detached float32 vector."""
    return torch.cat([t.detach().reshape(-1).float() for t in tensors])


def flat_params(model):
    """The trainable parameters as one detached float32 vector θ."""
    return flat(trainable(model))


def flat_grads(params):
    """The gradients of the tensors ``params`` (the trainable parameters) as one float32 vector (0 where absent)."""
    return flat(p.grad if p.grad is not None else torch.zeros_like(p) for p in params)


def ratio_stats(rho, rho_mask, adv, eps):
    """``clip_frac``, ``ess`` and the largest ratio on a negative-advantage sample, over the real ratios."""
    real = rho[rho_mask]
    negative = rho[rho_mask & (adv < 0).reshape(-1, *[1] * (rho.dim() - 1))]
    return {"clip_frac": float(clip_fraction(real, eps)), "ess": float(effective_sample_size(real)),
            "max_neg_ratio": float(negative.max()) if negative.numel() else float("nan")}


def probe_schedule(steps, tau, every, lags, pipeline="reuse"):
    """``{t: lag}``: the probe steps of a run and the lag each measures (§7 choice: lag τ − 1 first).

    Under ``reuse`` every ⌈every/τ⌉-th sync cycle is probed, the j-th at lag ``lags[j mod len(lags)]`` (so
    ``lags = (τ − 1,)`` probes the last, most stale step of each probed cycle); under ``async`` every batch
    from step τ − 1 on has lag τ − 1, and a probe fires every ``every`` steps from there.
    """
    if not every:
        return {}
    if pipeline == "async":
        return {t: tau - 1 for t in range(tau - 1, steps, every)}
    period = math.ceil(every / tau)
    schedule = {}
    for j, k in enumerate(range(0, math.ceil(steps / tau), period)):
        t = k * tau + lags[j % len(lags)]
        if t < steps:
            schedule[t] = lags[j % len(lags)]
    return schedule


def _per_group(model, batch, grpo, size, device):
    """A :class:`Streamed` of the per-group surrogate gradients ∇ℓ(θ; β, z_b) (3) of ``batch`` at θ, one group
    at a time (the clipped term; κ's KL term does not depend on β and cancels in b (17))."""
    groups, length = batch.rewards.shape[0], batch.completion_mask.shape[1]
    acc = Streamed(groups, grpo.bias_chunks, size, device)
    for b in range(groups):
        group = batch.rows(slice(b, b + 1))
        if bool((group.rewards == group.rewards[0, 0]).all()):  # equal rewards: A = 0 (1), a zero gradient
            acc.add(b, ())
            continue
        logp = token_logprobs(model, group.input_ids, group.attention_mask, length, grpo.temperature, group.group)
        loss, _, _ = grpo_loss(logp, group.behaviour_logp, group.completion_mask, sequence_advantages(group.rewards),
                               grpo.eps, sequence_ratio=grpo.sequence_ratio)
        acc.add(b, torch.autograd.grad(loss, trainable(model)), sign=-1.0)  # the loss is the negated surrogate
    return acc


def staleness_probe(model, behaviour, theta, beta, tokenizer, task, grpo, rng, generator):
    """The §7 probe at θ_t (``model``, flat ``theta``) against β_t (``behaviour``, flat ``beta``).

    Draws a *new* batch from β_t and a fresh one from θ_t (independent prompts). Returns the per-step values
    (bias_sq with its interval, the Lemma 1 terms), the per-group gradient norms ``(stale, fresh)`` that the
    run's G pools, and the secant terms of its L_β, L_D and r_clip.
    """
    prompts = grpo.probe_prompts or grpo.prompts
    stale, fresh = (rollout(policy, tokenizer, task.train(rng, prompts), grpo.group, grpo.max_new_tokens,
                            grpo.temperature, generator, 0) for policy in (behaviour, model))
    size, device = sum(p.numel() for p in trainable(model)), next(model.parameters()).device
    model.train()
    s, f = _per_group(model, stale, grpo, size, device), _per_group(model, fresh, grpo, size, device)
    bias_sq, lo, hi, _ = squared_norm(s, f)
    s.sums = f.sums = None  # only the norms are needed from here on: free 2m·d floats before the gap's m
    mask, length = fresh.completion_mask, fresh.completion_mask.shape[1]
    with torch.no_grad():
        beta_logp = token_logprobs(behaviour, fresh.input_ids, fresh.attention_mask, length, grpo.temperature,
                                   fresh.group)
    # group-level TV(D_β, D_θ) = E_{z~D_θ}[(1 − Π_i π_β(y_i)/π_θ(y_i))_+], unbiased on the fresh groups (9)
    log_ratio = ((beta_logp - fresh.behaviour_logp) * mask).sum(-1).reshape(prompts, grpo.group).sum(-1)
    tv = torch.clamp(1 - torch.exp(log_ratio.double()), min=0).cpu().numpy()
    # Lemma 1's gap E_{D_θ}[h_β − h_θ] on the fresh samples: same samples, only the ratio denominator moves (10)
    chunks = min(grpo.bias_chunks, prompts)
    gap = Streamed(chunks, chunks, size, device)
    bounds = np.linspace(0, prompts, chunks + 1).astype(int)
    for a in range(chunks):
        part, rows = fresh.rows(slice(bounds[a], bounds[a + 1])), slice(bounds[a] * grpo.group,
                                                                        bounds[a + 1] * grpo.group)
        logp = token_logprobs(model, part.input_ids, part.attention_mask, length, grpo.temperature, part.group)
        adv = sequence_advantages(part.rewards)
        difference = (grpo_loss(logp, beta_logp[rows], part.completion_mask, adv, grpo.eps,
                                sequence_ratio=grpo.sequence_ratio)[0]
                      - grpo_loss(logp, part.behaviour_logp, part.completion_mask, adv, grpo.eps,
                                  sequence_ratio=grpo.sequence_ratio)[0])
        gap.add(a, torch.autograd.grad(difference, trainable(model)), sign=-1.0)
    gap_sq, _, _, gap_se = squared_norm(gap)
    probe_G, probe_G_on = max(s.norms), max(f.norms)
    probe_tv, probe_gap = float(tv.mean()), math.sqrt(max(gap_sq, 0.0))
    values = {"bias_sq": bias_sq, "bias_sq_lo": lo, "bias_sq_hi": hi, "bias_norm": math.sqrt(max(bias_sq, 0.0)),
              "probe_G": probe_G, "probe_G_on": probe_G_on, "probe_tv": probe_tv, "probe_gap": probe_gap,
              "bias_bound": 2 * probe_G * probe_tv + probe_gap}
    extra = {"tv": probe_tv, "tv_se": float(tv.std(ddof=1) / math.sqrt(tv.size)), "gap_sq": gap_sq,
             "gap_se": gap_se, "r_clip": clip_scan(behaviour, theta, beta, stale, grpo)}
    return values, (s.norms, f.norms), extra


class Recorder:
    """The series of one run: :data:`PER_STEP` over T steps and ``theta_proj`` [T, k], NaN until written,
    plus what the per-run constants pool (the probes' group-gradient norms and secant terms)."""

    def __init__(self, steps):
        self.series = {name: np.full(steps, np.nan) for name in PER_STEP}
        self.theta_proj = np.full((steps, PROJECTIONS), np.nan, dtype=np.float32)
        self.nan_step = -1
        self.previous_update = self.previous_grad = None
        self.norms_stale, self.norms_on, self.secants = [], [], []

    def step(self, t, values):
        for name, value in values.items():
            self.series[name][t] = value

    def position(self, t, theta_t, theta_0):
        """``theta_proj`` of step t: P(θ_t − θ_0) (§6)."""
        self.theta_proj[t] = project(theta_t - theta_0).cpu().numpy()

    def probe(self, t, values, norms, extra):
        """A probe's per-step values, and its terms for the run's G, L_β and L_D."""
        self.step(t, values)
        self.norms_stale += norms[0]
        self.norms_on += norms[1]
        self.secants.append((self.series["stale_drift"][t], extra))

    def update(self, t, theta_t, theta_next, theta_0, beta_t, grad, eta):
        """Record step t's applied update u_t = (θ_{t+1} − θ_t)/η; returns False if the weights stopped being finite."""
        if not (torch.isfinite(theta_next).all() and torch.isfinite(grad).all()):
            return False
        u = (theta_next - theta_t) / eta
        stats = step_statistics(theta_t, theta_0, beta_t, u, self.previous_update, grad, self.previous_grad)
        self.step(t, {name: float(value) for name, value in stats.items()})
        self.previous_update, self.previous_grad = u, grad
        return True

    def collapse(self, t):
        """Mark the run collapsed at step t: every series NaN from t on (a diverged run, never censored)."""
        self.nan_step = t
        for series in self.series.values():
            series[t:] = np.nan
        self.theta_proj[t:] = np.nan

    def constants(self, seed):
        """``{const_NAME: value, const_NAME_se: se}`` for :data:`CONSTANTS`, NaN where the run measured nothing.

        G (7): the largest per-group gradient norm over the probes, at the stale β and on-policy, with a
        bootstrap se. L_β (10) and L_D (9): the largest noise-removed secant gap/‖θ_t − β_t‖ and
        TV/‖θ_t − β_t‖ over probes with a stale pair (se by the delta method). U (8): max_t ‖u_t‖. The region:
        the 90 % quantile of the run's stale drifts. r_clip (31): the smallest of the probes' :func:`clip_scan`.
        """
        rng = np.random.default_rng([seed, 9])
        out = {}
        out["G_stale"], out["G_on"] = max_with_se(self.norms_stale, rng), max_with_se(self.norms_on, rng)
        l_beta, l_d = [(math.nan, math.nan)], [(math.nan, math.nan)]
        for drift, extra in self.secants:
            if not drift > 0:
                continue
            root = math.sqrt(max(extra["gap_sq"], 0.0))
            # se of √x by the delta method; at x ≤ 0 the se of x itself bounds how far √x can be from 0
            se = extra["gap_se"] / (2 * root) if root > 0 else math.sqrt(max(extra["gap_se"], 0.0))
            l_beta.append((root / drift, se / drift))
            l_d.append((extra["tv"] / drift, extra["tv_se"] / drift))
        out["L_beta"] = max(l_beta, key=lambda v: -math.inf if math.isnan(v[0]) else v[0])
        out["L_D"] = max(l_d, key=lambda v: -math.inf if math.isnan(v[0]) else v[0])
        s = self.series
        out["U"] = max_with_se(s["update_norm"][np.isfinite(s["update_norm"])], rng)
        drifts = s["stale_drift"][np.isfinite(s["stale_drift"]) & (s["stale_drift"] > 0)]
        if drifts.size > 1:
            boot = np.quantile(rng.choice(drifts, size=(200, drifts.size)), 0.9, axis=1)
            out["region"] = (float(np.quantile(drifts, 0.9)), float(boot.std()))
        else:
            out["region"] = (math.nan, math.nan)
        clips = [extra["r_clip"] for _, extra in self.secants if np.isfinite(extra["r_clip"][0])]
        out["r_clip"] = min(clips) if clips else (math.nan, math.nan)
        return {key: float(v) for name, (value, se) in out.items()
                for key, v in ((f"const_{name}", value), (f"const_{name}_se", se))}



SCAN = 2.0 ** (np.arange(-12, 7) / 2)
"""Distances of the r_clip scan in units of the probe's stale drift (1/64 … 8, factors of √2): a pretrained
model two AdamW steps stale can clip 5 % of tokens already at an eighth of its drift (SmolLM2, 2-shot addition)."""

SCAN_ROWS = 64
"""Completions of the stale batch the r_clip scan scores (forward passes only, at most 6 of them)."""


def clip_fractions(shifted, beta, direction, batch, grpo):
    """``s ↦`` the token ``clip_frac`` of π_{β+s·v}/π_β on ``batch`` (drawn from β), one forward pass per call;
    ``shifted`` holds β + s·v afterwards."""
    mask = batch.completion_mask.bool()

    def fraction(s):
        torch.nn.utils.vector_to_parameters(beta + s * direction, shifted.parameters())
        with torch.no_grad():
            logp = token_logprobs(shifted, batch.input_ids, batch.attention_mask, mask.shape[1], grpo.temperature,
                                  batch.group)
        return float(clip_fraction(torch.exp(logp - batch.behaviour_logp)[mask], grpo.eps))

    return fraction


def clip_scan(shifted, theta, beta, batch, grpo, threshold=CLIP_THRESHOLD):
    """``(r_clip, se)`` along the probe's own stale direction (31): the distance s from β at which the token
    ``clip_frac`` of π_{β+s·v}/π_β on ``batch`` (drawn from β; its first :data:`SCAN_ROWS` completions) first
    reaches ``threshold``, v = (θ − β)/‖θ − β‖.

    The fraction grows with the distance from β along a line, so the first grid point of :data:`SCAN` at which
    it reaches ``threshold`` is found by bisection (1 + ⌈log2(len(SCAN) + 1)⌉ = 6 forward passes, not up to
    19). Log-interpolated between the two grid points that bracket the crossing; se is half the bracket's
    width. ``(nan, nan)`` at a fresh pair or if the fraction stays below ``threshold`` up to the last grid point.
    ``shifted`` is overwritten.
    """
    drift = float(torch.linalg.vector_norm(theta - beta))
    if drift == 0:
        return math.nan, math.nan
    batch = batch.rows(slice(0, max(1, SCAN_ROWS // batch.group)))
    fraction = clip_fractions(shifted, beta, (theta - beta) / drift, batch, grpo)
    distances = drift * SCAN
    low, high, f_low, f_high = -1, len(SCAN) - 1, 0.0, fraction(distances[-1])  # index −1: s = 0, no clipping
    if f_high < threshold:
        return math.nan, math.nan
    while high - low > 1:
        mid = (low + high) // 2
        value = fraction(distances[mid])
        low, high, f_low, f_high = (low, mid, f_low, value) if value >= threshold else (mid, high, value, f_high)
    s = float(distances[high])
    if low < 0:
        return s, s / 2
    s_low = float(distances[low])
    at = math.exp(math.log(s_low) + math.log(s / s_low) * (threshold - f_low) / (f_high - f_low))
    return at, (s - s_low) / 2
