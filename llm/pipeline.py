"""GRPO on a causal LM through the pipelines of docs/theory.md §3, measured as in §6 and §7.

One learner step reads in order: batch (with its version tag), probes at θ_t, loss, ĝ, optimiser step, sync.
Staleness τ_t is *measured* as learner step − batch version, so β_t = θ_{t−τ_t} (12).
"""

import copy

import numpy as np
import torch

from llm.loss import grpo_loss, sequence_advantages
from llm.model import load
from llm.probes import Recorder, flat_grads, flat_params, probe_schedule, ratio_stats, staleness_probe
from llm.rollout import accuracy, token_logprobs
from llm.sources import SOURCES
from llm.tasks import make_task
from llm.warmstart import warmstart
from theory.grpo import k3_kl
from theory.pipeline import ess_scaled_eta, slice_of


def make_optimizer(name, params, eta):
    """AdamW (the default in practice) or plain SGD, whose applied update is ĝ itself (8)."""
    # fused: one kernel per step instead of ~10 per tensor, the optimiser's cost on a small model
    return torch.optim.AdamW(params, lr=eta, fused=True) if name == "adamw" else torch.optim.SGD(params, lr=eta)


def consumed(batch, t, tau, reuse):
    """The part of ``batch`` that learner step t uses: all of it, or slice τ_t of τ (11)."""
    if reuse == "whole":
        return batch
    per = batch.rewards.shape[0] // tau
    j = slice_of(t, tau)
    return batch.rows(slice(j * per, (j + 1) * per))


def train(config, model_and_tokenizer=None):
    """Run GRPO for ``config.steps`` learner steps; return ``(series, theta_proj, constants, nan_step)``.

    ``series`` maps every name of :data:`llm.probes.PER_STEP` to a [T] array, ``theta_proj`` is [T, k] and
    ``constants`` holds the run's ``const_*`` (:meth:`llm.probes.Recorder.constants`).
    """
    grpo, seed = config.grpo, config.seed
    task = make_task(config.task)
    tokenizer, model = model_and_tokenizer or load(config.model, seed)
    warmstart(model, tokenizer, task, config.model, config.task, config.warmstart, seed)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    schedule = probe_schedule(config.steps, config.tau, grpo.bias_every, grpo.lags(config.tau), grpo.pipeline)
    behaviour = copy.deepcopy(model).eval().requires_grad_(False) if schedule else None
    device = next(model.parameters()).device
    rng, probe_rng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3])
    generator, probe_generator = (torch.Generator(device).manual_seed(s) for s in (seed, seed + 1_000_003))
    optimizer = make_optimizer(grpo.optimizer, [p for p in model.parameters() if p.requires_grad], config.eta)
    heldout = task.heldout()
    recorder = Recorder(config.steps)
    ref_part = ref_logp = None
    theta0 = flat_params(model)
    model.eval()
    source = SOURCES[grpo.pipeline](model, tokenizer, lambda: task.train(rng, grpo.prompts), grpo, config.tau,
                                    generator)
    try:
        for t in range(config.steps):
            model.eval()
            try:
                batch, beta = source.batch(t)
                values = {"val_reward": accuracy(model, tokenizer, heldout, grpo.max_new_tokens)} \
                    if t % grpo.val_every == 0 else {}
            except FloatingPointError:
                recorder.collapse(t)
                break
            theta = flat_params(model)
            values["staleness"] = t - batch.version
            values["stale_drift"] = float(torch.linalg.vector_norm(theta - beta))
            recorder.step(t, values)
            recorder.position(t, theta, theta0)
            if t in schedule:
                torch.nn.utils.vector_to_parameters(beta, behaviour.parameters())
                recorder.probe(t, *staleness_probe(model, behaviour, theta, beta, tokenizer, task, grpo, probe_rng,
                                                   probe_generator))
            part = consumed(batch, t, config.tau, grpo.reuse)
            length = part.completion_mask.shape[1]
            model.train()
            logp = token_logprobs(model, part.input_ids, part.attention_mask, length, grpo.temperature)
            if part.behaviour_logp is None:  # first consumed at lag 0, by the weights that drew it
                part.behaviour_logp = logp.detach()
            values = {}
            # kl_ref every step when κ > 0 (the loss needs it), else at validation steps only: a forward saved
            measure_kl = grpo.kappa > 0 or t % grpo.val_every == 0
            if measure_kl and part is not ref_part:  # the reference is frozen: one forward per consumed batch
                with torch.no_grad():
                    ref_logp = token_logprobs(reference, part.input_ids, part.attention_mask, length,
                                              grpo.temperature)
                ref_part = part
            adv = sequence_advantages(part.rewards)
            loss, rho, rho_mask = grpo_loss(logp, part.behaviour_logp, part.completion_mask, adv, grpo.eps,
                                            ref_logp if grpo.kappa else None, grpo.kappa, grpo.sequence_ratio)
            mask = part.completion_mask.float()
            if measure_kl:
                values["kl_ref"] = float((k3_kl(logp.detach(), ref_logp) * mask).sum() / mask.sum())
            values.update(reward=float(part.rewards.mean()), **ratio_stats(rho, rho_mask, adv, grpo.eps))
            eta_t = ess_scaled_eta(config.eta, values["ess"], grpo.ess_base)
            for group in optimizer.param_groups:
                group["lr"] = eta_t
            values["eta_scale"] = eta_t / config.eta
            recorder.step(t, values)
            if not torch.isfinite(loss):
                recorder.collapse(t)
                break
            optimizer.zero_grad()
            loss.backward()
            grad = -flat_grads(model)  # ĝ of (4) is the gradient of the surrogate, which the loss negates
            optimizer.step()
            if not recorder.update(t, theta, flat_params(model), theta0, beta, grad, config.eta):
                recorder.collapse(min(t + 1, config.steps - 1))
                break
            source.sync(t + 1)
    finally:
        source.close()
    return recorder.series, recorder.theta_proj, recorder.constants(seed), recorder.nan_step
