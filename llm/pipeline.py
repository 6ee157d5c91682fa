"""GRPO on a causal LM through the pipelines of docs/theory.md §3, measured as in §6 and §7.

One learner step reads in order: batch (with its version tag), probes at θ_t, loss, ĝ, optimiser step, sync.
Staleness τ_t is *measured* as learner step − batch version, so β_t = θ_{t−τ_t} (12).
"""

import copy

import numpy as np
import torch
from tqdm.auto import tqdm

from llm.loss import grpo_loss, sequence_advantages
from llm.model import load
from llm.probes import (Recorder, flat, flat_grads, flat_params, probe_schedule, ratio_stats, staleness_probe,
                         trainable)
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


def learn(model, part, ref_logp, grpo):
    """Backpropagate the GRPO loss (3) of ``part`` into ``model``'s gradients, ``grpo.micro_batch`` sequences at a
    time (0: all at once); returns the detached ``(logp, rho, rho_mask)`` of every sequence and whether the loss
    was finite.

    The loss is a mean over the N sequences, so a micro-batch of n_j sequences adds (n_j/N)·its own mean: the
    accumulated gradient is the whole batch's, and only one micro-batch's activations exist at a time.
    """
    n, length = part.completion_mask.shape
    step = grpo.micro_batch or n
    adv = sequence_advantages(part.rewards)
    logps, rhos, masks, finite = [], [], [], True
    for rows in (slice(i, min(i + step, n)) for i in range(0, n, step)):
        # a micro-batch of whole groups encodes each prompt once (token_logprobs)
        whole = rows.start % part.group == 0 and (rows.stop - rows.start) % part.group == 0
        logp = token_logprobs(model, part.input_ids[rows], part.attention_mask[rows], length, grpo.temperature,
                              part.group if whole else 1)
        behaviour = logp.detach() if part.behaviour_logp is None else part.behaviour_logp[rows]
        loss, rho, rho_mask = grpo_loss(logp, behaviour, part.completion_mask[rows], adv[rows], grpo.eps,
                                        None if ref_logp is None else ref_logp[rows], grpo.kappa,
                                        grpo.sequence_ratio)
        finite = finite and bool(torch.isfinite(loss))
        if finite:
            (loss * (rows.stop - rows.start) / n).backward()
        logps.append(logp.detach())
        rhos.append(rho)
        masks.append(rho_mask)
    return torch.cat(logps), torch.cat(rhos), torch.cat(masks), finite


def train(config, model_and_tokenizer=None, progress=False):
    """Run GRPO for ``config.steps`` learner steps; return ``(series, theta_proj, constants, nan_step)``.

    ``progress``: a bar over learner steps on stderr, naming the phase (a probe can take minutes on a CPU).

    ``series`` maps every name of :data:`llm.probes.PER_STEP` to a [T] array, ``theta_proj`` is [T, k] and
    ``constants`` holds the run's ``const_*`` (:meth:`llm.probes.Recorder.constants`).
    """
    grpo, seed = config.grpo, config.seed
    task = make_task(config.task)
    tokenizer, model = model_and_tokenizer or load(config.model, seed)
    warmstart(model, tokenizer, task, config.model, config.task, config.warmstart, seed)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    schedule = probe_schedule(config.steps, config.tau, grpo.bias_every, grpo.lags(config.tau), grpo.pipeline)
    # β's copy stays trainable like θ's weights (it only runs without autograd): a CPU linear on a strided input
    # takes another kernel for frozen weights, off in the last bit, and at lag 0 π_β must be π_θ exactly
    behaviour = copy.deepcopy(model).eval() if schedule else None
    device = next(model.parameters()).device
    rng, probe_rng = np.random.default_rng([seed, 2]), np.random.default_rng([seed, 3])
    generator, probe_generator = (torch.Generator(device).manual_seed(s) for s in (seed, seed + 1_000_003))
    params = trainable(model)
    optimizer = make_optimizer(grpo.optimizer, params, config.eta)
    heldout = task.heldout()
    recorder = Recorder(config.steps)
    ref_part = ref_logp = None
    theta0 = theta_next = flat_params(model)
    model.eval()
    source = SOURCES[grpo.pipeline](model, tokenizer, lambda: task.train(rng, grpo.prompts), grpo, config.tau,
                                    generator)
    bar = tqdm(total=config.steps, desc="learner steps", unit="step", disable=not progress)
    try:
        for t in range(config.steps):
            bar.set_postfix_str("rollout")
            model.eval()
            try:
                batch, beta = source.batch(t)
                validate = grpo.val_every and t % grpo.val_every == 0
                values = {"val_reward": accuracy(model, tokenizer, heldout, grpo.max_new_tokens)} if validate else {}
            except FloatingPointError:
                recorder.collapse(t)
                break
            theta = theta_next  # nothing moves θ between the optimiser's step and here
            values["staleness"] = t - batch.version
            values["stale_drift"] = float(torch.linalg.vector_norm(theta - beta))
            recorder.step(t, values)
            recorder.position(t, theta, theta0)
            if t in schedule:
                bar.set_postfix_str(f"staleness probe at lag {schedule[t]}")
                torch.nn.utils.vector_to_parameters(beta, behaviour.parameters())
                recorder.probe(t, *staleness_probe(model, behaviour, theta, beta, tokenizer, task, grpo, probe_rng,
                                                   probe_generator))
            part = consumed(batch, t, config.tau, grpo.reuse)
            bar.set_postfix_str("learner")
            model.train()
            # kl_ref every step when κ > 0 (the loss needs it), else at validation steps only: a forward saved
            measure_kl = grpo.kappa > 0 or validate
            if measure_kl and part is not ref_part:  # the reference is frozen: one forward per consumed batch
                with torch.no_grad():
                    ref_logp = token_logprobs(reference, part.input_ids, part.attention_mask,
                                              part.completion_mask.shape[1], grpo.temperature, part.group)
                ref_part = part
            optimizer.zero_grad()
            logp, rho, rho_mask, finite = learn(model, part, ref_logp if grpo.kappa else None, grpo)
            if part.behaviour_logp is None:  # first consumed at lag 0, by the weights that drew it
                part.behaviour_logp = logp
            mask = part.completion_mask.float()
            values = {"kl_ref": float((k3_kl(logp, ref_logp) * mask).sum() / mask.sum())} if measure_kl else {}
            values.update(reward=float(part.rewards.mean()),
                          **ratio_stats(rho, rho_mask, sequence_advantages(part.rewards), grpo.eps))
            eta_t = ess_scaled_eta(config.eta, values["ess"], grpo.ess_base)
            for group in optimizer.param_groups:
                group["lr"] = eta_t
            values["eta_scale"] = eta_t / config.eta
            recorder.step(t, values)
            if not finite:
                recorder.collapse(t)
                break
            grad = -flat_grads(params)  # ĝ of (4) is the gradient of the surrogate, which the loss negates
            optimizer.step()
            theta_next = flat(params)
            if not recorder.update(t, theta, theta_next, theta0, beta, grad, config.eta):
                recorder.collapse(min(t + 1, config.steps - 1))
                break
            source.sync(t + 1)
            bar.update()
    finally:
        bar.close()
        source.close()
    return recorder.series, recorder.theta_proj, recorder.constants(seed), recorder.nan_step
