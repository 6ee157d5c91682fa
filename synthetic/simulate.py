"""Asynchronous GRPO on a synthetic task, THEORY.md (4)–(6), (11)–(12), with every §6 metric.

Pipeline (§3): the batch sampled from ``θ_{kτ}`` is consumed for τ learner
steps, ``τ_t = t mod τ`` and ``β_t = θ_{t−τ_t}``; each step uses the whole batch
or the ``τ_t``-th of τ disjoint slices (group b belongs to slice ``b mod τ``).
The run is one ``lax.scan`` and η, τ and the seed are traced, so one compiled
function serves a whole (τ, η, seed) grid.

Metrics at step t describe ``θ_t`` and the update ``u_t`` it takes. Batch
metrics are recorded every step; the exact population ones (``val_reward``,
``kl_ref``, ``trunc_prob``, ``bias_norm`` and Lemma 1's ``bias_bound``) sum over
every prompt and answer, so they are computed once per block of ``exact_every``
steps (NaN elsewhere), at the block's step of largest lag τ_t: the staleness
Theorem 1 bounds, where a sync step would show no bias at all.
"""

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from synthetic.constants import lemma1_bound_at
from synthetic.exact import exact_kl, staleness_bias
from synthetic.tasks import success
from theory.grpo import advantages, clip_fraction, effective_sample_size, ratio, surrogate
from theory.metrics import cosine, l2_norm


@dataclass(frozen=True)
class RunConfig:
    """What is fixed across a sweep's grid (η, τ and the seed are arguments of the run)."""

    steps: int = 2000
    """Learner steps T."""
    batch: int = 16
    """Groups per rollout batch B."""
    optimizer: str = "sgd"
    """``"sgd"`` or ``"adam"``."""
    beta1: float = 0.9
    """Adam's first-moment decay (momentum); ignored by SGD."""
    clip_norm: float | None = None
    """Global gradient-norm clip (enforces Assumption 1's U); none: off."""
    reuse: str = "whole"
    """``"whole"``: every step uses the whole batch; ``"slices"``: step τ_t uses slice τ_t of τ."""
    exact_every: int = 10
    """Exact population metrics once per this many steps, at the most stale one (NaN elsewhere)."""
    lemma1: bool = True
    """Also record Lemma 1's ``bias_bound`` beside ``bias_norm`` (score norms per evaluation: the task's closed
    form where it has one, else a Jacobian of the table)."""
    ess_base: float | None = None
    """ESS-scaled learning rate η_t = η·min(1, ess_t/ess_base), as VCPO does; none: fixed η."""

    def __post_init__(self):
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer {self.optimizer!r} is not sgd or adam")
        if self.reuse not in ("whole", "slices"):
            raise ValueError(f"reuse {self.reuse!r} is not whole or slices")
        for name in ("steps", "batch", "exact_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)} must be ≥ 1")
        if self.steps % self.exact_every:
            raise ValueError(f"steps = {self.steps} must be a multiple of exact_every = {self.exact_every}")
        if self.clip_norm is not None and not self.clip_norm > 0:
            raise ValueError(f"clip_norm = {self.clip_norm} must be > 0")
        if self.ess_base is not None and not 0 < self.ess_base <= 1:
            raise ValueError(f"ess_base = {self.ess_base} must be in (0, 1] (ess is normalised)")


def optimizer(config, eta):
    """The optax transformation applied to ``−ĝ`` (optax minimises; GRPO ascends the surrogate)."""
    base = optax.sgd(eta) if config.optimizer == "sgd" else optax.adam(eta, b1=config.beta1)
    return base if config.clip_norm is None else optax.chain(optax.clip_by_global_norm(config.clip_norm), base)


class Batch(NamedTuple):
    prompts: jax.Array  # [B]
    answers: jax.Array  # [B, n]
    logp_beta: jax.Array  # [B, n] behaviour log-probs recorded at sampling time
    version: jax.Array  # learner step whose weights sampled it


class Carry(NamedTuple):
    theta: jax.Array
    beta: jax.Array
    opt_state: optax.OptState
    batch: Batch
    prev_update: jax.Array
    prev_grad: jax.Array
    cycle_sum: jax.Array
    prev_cycle_sum: jax.Array
    key: jax.Array


def sample_batch(task, theta, key, n_groups, version):
    """B groups ``z ~ D_θ`` on the train prompts, with behaviour log-probs (the rollout worker)."""
    problem = task.problem
    key_prompt, key_answer = jax.random.split(key)
    prompts = jax.random.choice(key_prompt, problem.prompt_weights.shape[0], (n_groups,), p=problem.prompt_weights)
    if task.answer_sampler is not None:
        answers = task.answer_sampler(theta, prompts, key_answer, problem.n)
    else:
        # inverse CDF: one uniform per answer instead of a Gumbel per (answer, candidate) as categorical draws
        cdf = jnp.cumsum(jnp.exp(problem.logp_fn(theta)[prompts]), axis=-1)  # [B, Y]
        u = jax.random.uniform(key_answer, (n_groups, problem.n)) * cdf[:, -1:]
        answers = jnp.minimum(jax.vmap(jnp.searchsorted)(cdf, u), cdf.shape[-1] - 1)
    return Batch(prompts, answers, task.sampled_logp(theta, prompts, answers), jnp.asarray(version))


def batch_objective(theta, task, batch, weights):
    """Minibatch surrogate (4): weighted mean over groups of ℓ(θ; β, z_b), sequence-level ratios (2)."""
    problem = task.problem
    rewards = problem.reward[batch.prompts[:, None], batch.answers]
    rho = ratio(task.sampled_logp(theta, batch.prompts, batch.answers), batch.logp_beta)
    kl = 0.0
    if problem.kappa:
        logp = problem.logp_fn(theta)
        logp_ref = jax.lax.stop_gradient(problem.logp_fn(problem.theta_ref))
        kl = jnp.sum(jnp.exp(logp[batch.prompts]) * (logp[batch.prompts] - logp_ref[batch.prompts]), axis=-1)
    adv = advantages(rewards)
    per_group = surrogate(rho, adv, problem.eps, kl, problem.kappa, problem.dual_clip)
    return jnp.sum(weights * per_group) / jnp.sum(weights), (rho, adv, rewards)


def make_run(task, config):
    """``run(eta, tau, seed) -> {metric: [T]}``, pure and jittable; vmap it over any of its arguments."""
    problem = task.problem

    def learner_step(carry, t, eta, tau, tx):
        key, key_batch = jax.random.split(carry.key)
        sync = t % tau == 0
        beta = jnp.where(sync, carry.theta, carry.beta)
        # t and τ are shared by every run of a vmapped grid, so this stays a real branch.
        batch = jax.lax.cond(sync, lambda: sample_batch(task, carry.theta, key_batch, config.batch, t),
                             lambda: carry.batch)
        lag = t - batch.version
        group = jnp.arange(config.batch)
        weights = jnp.ones(config.batch) if config.reuse == "whole" else (group % tau == lag % tau).astype(float)
        (_, (rho, adv, rewards)), grad = jax.value_and_grad(batch_objective, has_aux=True)(
            carry.theta, task, batch, weights)
        neg = adv < 0
        sample_w = jnp.broadcast_to(weights[:, None], rho.shape)
        ess = effective_sample_size(rho, sample_w)
        updates, opt_state = tx.update(-grad, carry.opt_state, carry.theta)
        # η_t/η: scaling the optimiser's output is scaling its learning rate, for SGD and Adam alike
        eta_scale = 1.0 if config.ess_base is None else jnp.minimum(1.0, ess / config.ess_base)
        theta_next = optax.apply_updates(carry.theta, eta_scale * updates)
        u = (theta_next - carry.theta) / eta
        cycle_end = (t + 1) % tau == 0
        cycle_sum = carry.cycle_sum + u
        metrics = {
            # a diverged θ is a collapse (§6): its reward is NaN from the first non-finite step on
            "reward": jnp.where(jnp.all(jnp.isfinite(carry.theta)), jnp.sum(sample_w * rewards) / jnp.sum(sample_w),
                                jnp.nan),
            "grad_cos": cosine(u, carry.prev_update),
            "raw_grad_cos": cosine(grad, carry.prev_grad),
            "drift": l2_norm(carry.theta - task.theta_0),
            "stale_drift": l2_norm(carry.theta - beta),
            "clip_frac": clip_fraction(rho, problem.eps, sample_w),
            "ess": ess,
            "update_norm": l2_norm(u),
            "batch_cos": jnp.where(cycle_end & (t >= tau), cosine(cycle_sum, carry.prev_cycle_sum), jnp.nan),
            "max_neg_ratio": jnp.max(jnp.where(neg & (sample_w > 0), rho, 0.0)),
            "staleness": lag.astype(float),
            "eta_scale": jnp.asarray(eta_scale, dtype=float),
        }
        carry = Carry(theta_next, beta, opt_state, batch, u, grad,
                      jnp.where(cycle_end, 0.0, cycle_sum), jnp.where(cycle_end, cycle_sum, carry.prev_cycle_sum), key)
        return carry, metrics

    def exact_metrics(theta, beta):
        logp = problem.logp_fn(theta)
        args = (problem.reward, problem.prompt_weights, problem.n, problem.eps, problem.kappa, problem.theta_ref,
                problem.dual_clip)
        metrics = {
            "val_reward": success(task, theta, task.val_weights),
            "kl_ref": exact_kl(logp, problem.logp_fn(problem.theta_ref), problem.prompt_weights),
            "trunc_prob": jnp.sum(problem.prompt_weights * jnp.sum(jnp.exp(logp) * task.truncated[None], axis=-1)),
        }
        if config.lemma1:
            terms = lemma1_bound_at(problem.logp_fn, theta, beta, *args, score_norm=task.score_norm)
            metrics.update(bias_norm=terms.bias_norm, bias_bound=terms.bound)
        else:
            metrics["bias_norm"] = l2_norm(staleness_bias(problem.logp_fn, theta, beta, *args)[0])
        return metrics

    def run(eta, tau, seed):
        tx = optimizer(config, eta)
        theta_0 = task.theta_0
        key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
        zeros = jnp.zeros_like(theta_0)
        carry = Carry(theta_0, theta_0, tx.init(theta_0), sample_batch(task, theta_0, key_init, config.batch, 0),
                      zeros, zeros, zeros, zeros, key_run)

        def block(carry, t_block):
            ts = t_block * config.exact_every + jnp.arange(config.exact_every)
            # the block's most stale step (largest τ_t): the one Theorem 1 bounds, and never a sync for τ > 1
            at = jnp.argmax(ts % tau)

            def step(state, t):
                carry, pair = state
                carry_next, metrics = learner_step(carry, t, eta, tau, tx)
                pair = jax.tree.map(lambda kept, now: jnp.where(t == ts[at], now, kept), pair,
                                    (carry.theta, carry_next.beta))  # (θ_t, β_t)
                return (carry_next, pair), metrics

            (carry, pair), metrics = jax.lax.scan(step, (carry, (carry.theta, carry.beta)), ts)
            chosen = jnp.arange(config.exact_every) == at
            for name, value in exact_metrics(*pair).items():
                metrics[name] = jnp.where(chosen, value, jnp.nan)
            return carry, metrics

        _, metrics = jax.lax.scan(block, carry, jnp.arange(config.steps // config.exact_every))
        return {name: value.reshape(-1) for name, value in metrics.items()}

    return run
