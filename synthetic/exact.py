"""Exact population surrogate, gradient mapping and staleness bias, docs/theory.md (3), (13)–(17).

A :class:`DiscreteTask` is a GRPO problem over an enumerable answer set: a policy
whose ``logp(θ)`` is the table ``log π_θ(y|x)`` ``[P, Y]``, a reward table
``r̄[P, Y]`` (the probability that answer y to prompt x earns reward 1: 0/1 for
verifiable rewards, in between for noisy ones), prompt weights ``w[P]`` and the
knobs of (3). Group instances are exchangeable and rewards independent given
the answers, so

    J(θ; β) = Σ_x w_x [ Σ_y π_σ(y|x) Σ_{r∈{0,1}} P(r|x,y) Σ_s Bin(s; n−1, p_σ(x)) ψ(ρ_θβ(y), A(r, s)) − κ KL_x ]

with ``σ = β`` the sampling policy, ``p_σ(x) = Σ_y π_σ(y|x) r̄(x,y)`` its success
probability, ``ψ`` the clipped term of (3) and ``A(r, s)`` the advantage (1) of a
sample with reward ``r`` in a group where ``s`` of the other ``n − 1`` succeed.
``ψ`` is linear in ``A`` on each sign and ``A(r, ·)`` keeps one sign per reward, so
the sum over ``s`` moves inside ``ψ`` as the mean advantage ``Ā_r(x)``, and
``g(θ, β) = ∇_θ J`` with β held fixed (13) costs ``O(P·Y)``, not ``O(P·(2Y)^n)``;
:func:`enumerated_surrogate` and :func:`enumerated_gradient` are the oracles over
every ordered group and reward vector that the tests compare against.
"""

import dataclasses
import itertools
import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from theory.grpo import advantages, clipped_slopes, clipped_term, ratio
from theory.pipeline import per_prompt_kl

STATIC = dict(metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class DiscreteTask:
    """A discrete policy under GRPO (3): everything the population quantities depend on but (θ, β). A pytree:
    arrays are leaves, the knobs of (3) static."""

    policy: Any
    """Has ``logp(θ [d]) → log π_θ(y|x) [P, Y]`` (and, for the engine, ``sequence_logp`` and ``sample``)."""
    reward: jax.Array
    """``r̄ [P, Y]``: probability of reward 1 (binary rewards: 0/1)."""
    prompt_weights: jax.Array
    """Prompt distribution ``[P]``."""
    theta_ref: jax.Array | None = None
    """Reference parameters of the KL term (none: no KL)."""
    n: int = dataclasses.field(default=8, **STATIC)
    """Group size."""
    eps: float = dataclasses.field(default=0.2, **STATIC)
    """Clip ε of (3)."""
    kappa: float = dataclasses.field(default=0.0, **STATIC)
    """KL coefficient κ."""
    dual_clip: float | None = dataclasses.field(default=None, **STATIC)
    """Dual-clip constant c > 1 + ε, or none."""

    def logp(self, theta):
        """``log π_θ(y|x)`` ``[P, Y]``."""
        return self.policy.logp(theta)

    @property
    def has_kl(self):
        """Whether (3) has a KL term."""
        if self.kappa and self.theta_ref is None:
            raise ValueError(f"kappa = {self.kappa} needs a reference policy")
        return bool(self.kappa)


def advantage_table(n):
    """``A[r, s]``: advantage (1) of a sample with reward r ∈ {0,1} when s of the other n−1 succeed.

    Built by calling :func:`theory.grpo.advantages` on the group itself, so the
    table is the definition, not a re-derivation.
    """
    s = np.arange(n)
    groups = np.zeros((2, n, n))
    groups[1, :, 0] = 1.0
    others = np.arange(1, n)[None, :] <= s[:, None]
    groups[:, :, 1:] = others[None].astype(float)
    return jnp.asarray(advantages(groups)[:, :, 0])


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def clipped(rho, adv, eps, dual_clip=None):
    """:func:`theory.grpo.clipped_term`, differentiated by :func:`theory.grpo.clipped_slopes`: autodiff through its
    minimum and clip cost about four times the value itself on a probe's ``[P, Y]`` tables (measured: 12.8 ms of a
    20 ms table gradient for 256 runs), and the exact gradients take it four times per probe."""
    return clipped_term(rho, adv, eps, dual_clip)


@clipped.defjvp
def _clipped_jvp(eps, dual_clip, primals, tangents):
    (rho, adv), (d_rho, d_adv) = primals, tangents
    slope_rho, slope_adv = clipped_slopes(rho, adv, eps, dual_clip)
    return clipped_term(rho, adv, eps, dual_clip), slope_rho * d_rho + slope_adv * d_adv


def binomial_pmf(p, n_minus_1):
    """``Bin(s; n−1, p)`` for s = 0..n−1, broadcast over the shape of ``p`` (last axis: s)."""
    p = jnp.clip(p, 0.0, 1.0)[..., None]
    s = jnp.arange(n_minus_1 + 1).reshape((1,) * (p.ndim - 1) + (-1,))  # explicit ranks: rank promotion may raise
    log_choose = gammaln(n_minus_1 + 1.0) - gammaln(s + 1.0) - gammaln(n_minus_1 - s + 1.0)
    return (jnp.exp(log_choose) * jnp.where(s == 0, 1.0, p**s)
            * jnp.where(s == n_minus_1, 1.0, (1.0 - p) ** (n_minus_1 - s)))


def exact_kl(logp_theta, logp_ref, prompt_weights):
    """Exact ``E_x KL(π_θ(·|x) ‖ π_ref(·|x))`` of a discrete policy."""
    return jnp.sum(prompt_weights * per_prompt_kl(logp_theta, logp_ref))


def population_surrogate(task, logp_theta, logp_beta, logp_sampler, logp_ref=None):
    """Population surrogate ``E_{z ~ D_σ}[ℓ(θ; β, z)]`` of (3), exactly, from ``[P, Y]`` log-prob tables.

    ``logp_beta`` enters only the ratio's denominator, ``logp_sampler`` (σ) only
    the sampling distribution: σ = β gives ``J(θ; β)`` (13); σ = θ (held fixed)
    gives the on-policy expectation of (10).
    """
    pi_sampler = jnp.exp(logp_sampler)
    p_success = jnp.sum(pi_sampler * task.reward, axis=-1)  # [P]
    mean_adv = binomial_pmf(p_success, task.n - 1) @ advantage_table(task.n).T  # [P, 2]: Ā_0, Ā_1 per prompt
    # ψ(ρ, A) is linear in A on each half-line, and A(r, s) has one sign for each r (≥ 0 for r = 1, ≤ 0 for
    # r = 0), so Σ_s Bin(s) ψ(ρ, A(r, s)) = ψ(ρ, Ā_r): O(P·Y), not O(P·Y·n).
    rho = ratio(logp_theta, logp_beta)
    psi = (task.reward * clipped(rho, mean_adv[:, 1:], task.eps, task.dual_clip)
           + (1.0 - task.reward) * clipped(rho, mean_adv[:, :1], task.eps, task.dual_clip))  # [P, Y]
    objective = jnp.sum(task.prompt_weights * jnp.sum(pi_sampler * psi, axis=-1))
    if task.has_kl:
        objective = objective - task.kappa * exact_kl(logp_theta, logp_ref, task.prompt_weights)
    return objective


def surrogate_gradient(task, theta, beta, sampler=None):
    """Population gradient mapping ``g(θ, β) = E_{z~D_β}[∇_θ ℓ(θ; β, z)]`` (13).

    ``sampler`` defaults to β; pass θ for ``E_{z~D_θ}[∇_θ ℓ(θ; β, z)]`` (10).
    """
    logp_beta = jax.lax.stop_gradient(task.logp(beta))
    logp_sampler = logp_beta if sampler is None else jax.lax.stop_gradient(task.logp(sampler))
    logp_ref = jax.lax.stop_gradient(task.logp(task.theta_ref)) if task.has_kl else None
    return jax.grad(lambda params: population_surrogate(task, task.logp(params), logp_beta, logp_sampler,
                                                        logp_ref))(theta)


def staleness_bias(task, theta, beta):
    """Exact staleness bias (16)–(17): ``b = g(θ, β) − g_on(θ)``; returns ``(b, g(θ,β), g_on(θ))``."""
    g_stale = surrogate_gradient(task, theta, beta)
    g_on = surrogate_gradient(task, theta, theta)
    return g_stale - g_on, g_stale, g_on


def _table_gradients(task, theta, beta):
    """``(backward, tables)``: the four population surrogates' gradients with respect to the ``[P, Y]`` table
    ``log π_θ`` (in :func:`gradient_mappings`' order) and the policy's backward pass from such a table to θ."""
    logp_theta, backward = jax.vjp(task.logp, theta)
    held = jax.lax.stop_gradient(logp_theta)
    logp_beta = jax.lax.stop_gradient(task.logp(beta))
    logp_ref = jax.lax.stop_gradient(task.logp(task.theta_ref)) if task.has_kl else None
    table_gradient = jax.grad(population_surrogate, argnums=1)
    # (ratio denominator, sampler) of each table
    tables = [table_gradient(task, logp_theta, denominator, sampler, logp_ref)
              for denominator, sampler in ((logp_beta, logp_beta), (held, held), (logp_beta, held), (held, logp_beta))]
    return (lambda table: backward(table)[0]), tables


def gradient_mappings(task, theta, beta):
    """The four population gradients of Lemma 1's two splits at (θ, β), sharing one forward pass through the
    policy: ``[4, d]`` rows ``E_{D_β}[∇ℓ(θ;β)] = g(θ,β)``, ``E_{D_θ}[∇ℓ(θ;θ)] = g_on(θ)``, ``E_{D_θ}[∇ℓ(θ;β)]``
    (10) and ``E_{D_β}[∇ℓ(θ;θ)]`` (the alternative split, docs/substrate.md)."""
    backward, tables = _table_gradients(task, theta, beta)
    # one backward pass per table, never a stacked [4, P, Y] cotangent: XLA's CPU loops crawl on rank ≥ 4 arrays
    return jnp.stack([backward(table) for table in tables])


def group_tv(logp_a, logp_b, prompt_weights, n):
    """Exact ``TV(D_a, D_b)`` of n-sample group distributions (9), ``½ Σ |P − Q|``.

    The likelihood ratio of a group depends only on its answer counts (rewards
    have the same law given the answers under both), so the sum runs over the
    ``C(n+Y−1, n)`` count vectors with multinomial weights instead of the ``Y^n``
    ordered groups. Numpy, for moderate ``Y`` and ``n``.
    """
    logp_a, logp_b = np.asarray(logp_a, float), np.asarray(logp_b, float)
    n_answers = logp_a.shape[-1]
    counts = np.array([np.bincount(c, minlength=n_answers) for c in
                       itertools.combinations_with_replacement(range(n_answers), n)])  # [C, Y]
    log_multinomial = math.lgamma(n + 1) - np.sum([[math.lgamma(k + 1) for k in row] for row in counts], axis=1)
    per_prompt = 0.5 * np.sum(
        np.abs(np.exp(log_multinomial[None] + logp_a @ counts.T) - np.exp(log_multinomial[None] + logp_b @ counts.T)),
        axis=-1,
    )
    return float(np.sum(np.asarray(prompt_weights) * per_prompt))


def _outcomes(n):
    """Every reward vector of a group, ``[2^n, n]``."""
    return np.array(list(itertools.product((0.0, 1.0), repeat=n)))


def enumerated_surrogate(task, logp_theta, logp_beta, logp_sampler, logp_ref=None):
    """Test oracle for :func:`population_surrogate`: the sum over all ``Y^n`` ordered groups and ``2^n`` reward
    vectors. Plain numpy; each group's advantages come from :func:`theory.grpo.advantages`."""
    logp_theta, logp_beta, logp_sampler, reward = (np.asarray(a, float) for a in
                                                   (logp_theta, logp_beta, logp_sampler, task.reward))
    n_prompts, n_answers = logp_theta.shape
    groups, outcomes = np.array(list(itertools.product(range(n_answers), repeat=task.n))), _outcomes(task.n)
    total = 0.0
    for x in range(n_prompts):
        prob_r = reward[x][groups]  # [G, n]
        for r in outcomes:
            prob = np.exp(logp_sampler[x][groups].sum(axis=1)) * np.prod(np.where(r > 0, prob_r, 1.0 - prob_r), axis=1)
            rho = ratio(logp_theta[x][groups], logp_beta[x][groups])
            adv = advantages(np.broadcast_to(r, groups.shape))
            terms = np.mean(clipped_term(rho, adv, task.eps, task.dual_clip), axis=1)
            total += float(task.prompt_weights[x]) * np.sum(prob * terms)
    if task.has_kl:
        total -= task.kappa * float(exact_kl(logp_theta, np.asarray(logp_ref, float),
                                             np.asarray(task.prompt_weights, float)))
    return total


def enumerated_gradient(task, theta, beta, sampler=None):
    """Test oracle for :func:`surrogate_gradient`: ``Σ_z P_σ(z) ∇_θ ℓ(θ; β, z)`` over every ordered group and
    reward vector. Each group's advantages come from :func:`theory.grpo.advantages` on its own rewards, its ratios
    from :func:`theory.grpo.ratio`; no binomial shortcut."""
    logp_beta = task.logp(beta)
    logp_sampler = logp_beta if sampler is None else task.logp(sampler)
    logp_ref = task.logp(task.theta_ref) if task.has_kl else None
    n_prompts, n_answers = task.reward.shape
    groups = jnp.asarray(list(itertools.product(range(n_answers), repeat=task.n)))  # [G, n]
    outcomes = jnp.asarray(_outcomes(task.n))  # [R, n]

    def objective(params):
        logp = task.logp(params)
        total = 0.0
        for x in range(n_prompts):
            prob_r = task.reward[x][groups]  # [G, n]
            p_outcome = jnp.prod(jnp.where(outcomes[:, None] > 0, prob_r[None], 1.0 - prob_r[None]), axis=-1)  # [R, G]
            prob = jnp.exp(jnp.sum(logp_sampler[x][groups], axis=1))[None] * p_outcome
            rho = ratio(logp[x][groups], logp_beta[x][groups])[None]  # [1, G, n]
            adv = advantages(jnp.broadcast_to(outcomes[:, None], (*p_outcome.shape, task.n)))
            terms = jnp.mean(clipped_term(rho, adv, task.eps, task.dual_clip), axis=-1)
            total = total + task.prompt_weights[x] * jnp.sum(prob * terms)
        if task.has_kl:
            total = total - task.kappa * exact_kl(logp, logp_ref, task.prompt_weights)
        return total

    return jax.grad(objective)(theta)
