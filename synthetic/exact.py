"""Exact population surrogate, gradient mapping and staleness bias, THEORY.md (3), (13)–(17).

A *discrete policy* is any function ``θ ↦ log π_θ(y|x)`` returning an array
``[P, Y]`` over an enumerable answer set, with a binary reward table
``r[P, Y]`` and prompt weights ``w[P]``. Group instances are exchangeable, so

    J(θ; β) = Σ_x w_x [ Σ_y π_σ(y|x) Σ_s Bin(s; n−1, p_σ(x)) ψ(ρ_θβ(y), A(r(y), s)) − κ KL(π_θ‖π_ref) ]

with ``σ = β`` the sampling policy, ``p_σ(x)`` its success probability,
``ψ`` the clipped term of (3) and ``A(r, s)`` the advantage (1) of a sample with
reward ``r`` in a group where ``s`` of the other ``n − 1`` samples succeed.
``ψ`` is linear in ``A`` on each sign and ``A(r, ·)`` keeps one sign per reward, so
the sum over ``s`` moves inside ``ψ`` as the mean advantage ``Ā_r(x)``, and
``g(θ, β) = ∇_θ J`` with β held fixed (13) costs ``O(P·Y)``, not ``O(P·Y^n)``;
:func:`enumerated_surrogate` and :func:`enumerated_gradient` are the ``Y^n``
oracles the tests compare against.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from theory.grpo import advantages, clipped_term, ratio


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


def binomial_pmf(p, n_minus_1):
    """``Bin(s; n−1, p)`` for s = 0..n−1, broadcast over the shape of ``p`` (last axis: s)."""
    p = jnp.clip(p, 0.0, 1.0)[..., None]
    s = jnp.arange(n_minus_1 + 1).reshape((1,) * (p.ndim - 1) + (-1,))  # explicit ranks: rank promotion may raise
    log_choose = gammaln(n_minus_1 + 1.0) - gammaln(s + 1.0) - gammaln(n_minus_1 - s + 1.0)
    return jnp.exp(log_choose) * jnp.where(s == 0, 1.0, p**s) * jnp.where(s == n_minus_1, 1.0, (1.0 - p) ** (n_minus_1 - s))


def _has_kl(kappa, logp_ref):
    """Whether (3) has a KL term: a reference is given (κ may then be traced, e.g. vmapped)."""
    if logp_ref is None and isinstance(kappa, (int, float)) and kappa != 0:
        raise ValueError(f"kappa = {kappa} needs a reference policy")
    return logp_ref is not None


def exact_kl(logp_theta, logp_ref, prompt_weights):
    """Exact ``E_x KL(π_θ(·|x) ‖ π_ref(·|x))`` of a discrete policy."""
    per_prompt = jnp.sum(jnp.exp(logp_theta) * (logp_theta - logp_ref), axis=-1)
    return jnp.sum(prompt_weights * per_prompt)


def population_surrogate(logp_theta, logp_beta, logp_sampler, reward, prompt_weights, n, eps, kappa=0.0,
                         logp_ref=None, dual_clip=None):
    """Population surrogate ``E_{z ~ D_σ}[ℓ(θ; β, z)]`` of (3), exactly.

    ``logp_beta`` enters only the ratio's denominator, ``logp_sampler`` (σ) only
    the sampling distribution: σ = β gives ``J(θ; β)`` (13); σ = θ (held fixed)
    gives the on-policy expectation of (10). All log-prob arrays are ``[P, Y]``.
    """
    pi_sampler = jnp.exp(logp_sampler)
    p_success = jnp.sum(pi_sampler * reward, axis=-1)  # [P]
    group_weights = binomial_pmf(p_success, n - 1)  # [P, n]
    # ψ(ρ, A) is linear in A on each half-line, and A(r, s) has one sign for each r (≥ 0 for r = 1, ≤ 0 for
    # r = 0), so Σ_s Bin(s) ψ(ρ, A(r, s)) = ψ(ρ, Ā_r) with Ā_r = Σ_s Bin(s) A(r, s): O(P·Y), not O(P·Y·n).
    mean_adv = group_weights @ advantage_table(n).T  # [P, 2]: Ā_0, Ā_1 per prompt
    adv = jnp.where(reward > 0, mean_adv[:, 1:], mean_adv[:, :1])  # [P, Y]
    psi = clipped_term(ratio(logp_theta, logp_beta), adv, eps, dual_clip)  # [P, Y]
    per_prompt = jnp.sum(pi_sampler * psi, axis=-1)
    objective = jnp.sum(prompt_weights * per_prompt)
    if _has_kl(kappa, logp_ref):
        objective = objective - kappa * exact_kl(logp_theta, logp_ref, prompt_weights)
    return objective


def surrogate_gradient(logp_fn, theta, beta, reward, prompt_weights, n, eps, kappa=0.0, theta_ref=None,
                       dual_clip=None, sampler=None):
    """Population gradient mapping ``g(θ, β) = E_{z~D_β}[∇_θ ℓ(θ; β, z)]`` (13).

    ``sampler`` defaults to β; pass θ for ``E_{z~D_θ}[∇_θ ℓ(θ; β, z)]`` (10).
    """
    logp_beta = jax.lax.stop_gradient(logp_fn(beta))
    logp_sampler = logp_beta if sampler is None else jax.lax.stop_gradient(logp_fn(sampler))
    logp_ref = None if theta_ref is None else jax.lax.stop_gradient(logp_fn(theta_ref))

    def objective(params):
        return population_surrogate(logp_fn(params), logp_beta, logp_sampler, reward, prompt_weights, n, eps,
                                    kappa, logp_ref, dual_clip)

    return jax.grad(objective)(theta)


def staleness_bias(logp_fn, theta, beta, reward, prompt_weights, n, eps, kappa=0.0, theta_ref=None, dual_clip=None):
    """Exact staleness bias (16)–(17): ``b = g(θ, β) − g_on(θ)``; returns ``(b, g(θ,β), g_on(θ))``."""
    args = (reward, prompt_weights, n, eps, kappa, theta_ref, dual_clip)
    g_stale = surrogate_gradient(logp_fn, theta, beta, *args)
    g_on = surrogate_gradient(logp_fn, theta, theta, *args)
    return g_stale - g_on, g_stale, g_on


def group_tv(logp_a, logp_b, prompt_weights, n):
    """Exact ``TV(D_a, D_b)`` of n-sample group distributions (9), ``½ Σ |P − Q|``.

    The likelihood ratio of a group depends only on its answer counts, so the
    sum runs over the ``C(n+Y−1, n)`` count vectors with multinomial weights
    instead of the ``Y^n`` ordered groups. Numpy, for moderate ``Y`` and ``n``.
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


def enumerated_surrogate(logp_theta, logp_beta, logp_sampler, reward, prompt_weights, n, eps, kappa=0.0,
                         logp_ref=None, dual_clip=None):
    """Test oracle for :func:`population_surrogate`: the sum over all ``Y^n`` ordered groups.

    Plain numpy; each group's advantages come from :func:`theory.grpo.advantages`.
    """
    logp_theta, logp_beta, logp_sampler, reward = (np.asarray(a, float) for a in
                                                   (logp_theta, logp_beta, logp_sampler, reward))
    n_prompts, n_answers = logp_theta.shape
    groups = np.array(list(itertools.product(range(n_answers), repeat=n)))  # [Y^n, n]
    total = 0.0
    for x in range(n_prompts):
        prob = np.exp(logp_sampler[x][groups].sum(axis=1))
        adv = advantages(reward[x][groups])
        rho = ratio(logp_theta[x][groups], logp_beta[x][groups])
        total += prompt_weights[x] * np.sum(prob * np.mean(clipped_term(rho, adv, eps, dual_clip), axis=1))
    if _has_kl(kappa, logp_ref):
        total -= kappa * float(exact_kl(logp_theta, np.asarray(logp_ref, float), np.asarray(prompt_weights, float)))
    return total


def enumerated_gradient(logp_fn, theta, beta, reward, prompt_weights, n, eps, kappa=0.0, theta_ref=None,
                        dual_clip=None, sampler=None):
    """Test oracle for :func:`surrogate_gradient`: ``Σ_groups P_σ(group) ∇_θ ℓ(θ; β, group)`` over all ``Y^n`` ordered groups.

    Each group's advantages come from :func:`theory.grpo.advantages` on its own
    rewards, its ratios from :func:`theory.grpo.ratio`; no binomial shortcut.
    """
    logp_beta = logp_fn(beta)
    logp_sampler = logp_beta if sampler is None else logp_fn(sampler)
    logp_ref = None if theta_ref is None else logp_fn(theta_ref)
    n_prompts, n_answers = reward.shape
    groups = jnp.asarray(list(itertools.product(range(n_answers), repeat=n)))  # [Y^n, n]

    def objective(params):
        logp = logp_fn(params)
        total = 0.0
        for x in range(n_prompts):
            prob = jnp.exp(jnp.sum(logp_sampler[x][groups], axis=1))
            rho = ratio(logp[x][groups], logp_beta[x][groups])
            terms = jnp.mean(clipped_term(rho, advantages(reward[x][groups]), eps, dual_clip), axis=1)
            total = total + prompt_weights[x] * jnp.sum(prob * terms)
        if _has_kl(kappa, logp_ref):
            total = total - kappa * exact_kl(logp, logp_ref, prompt_weights)
        return total

    return jax.grad(objective)(theta)
