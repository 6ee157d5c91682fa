"""Local constants of THEORY.md §2 for any discrete policy, and Lemma 1 term by term.

A discrete policy is ``logp_fn(θ) → log π_θ(y|x)`` as ``[P, Y]`` (θ a flat vector
``[d]``) with binary rewards ``[P, Y]`` and prompt weights ``[P]``, as in
:mod:`synthetic.exact`. A group instance ``z`` is a prompt x, n answers and
their rewards; its surrogate gradient (3) is

    ∇ℓ(θ; β, z) = (1/n) Σ_i ψ'(ρ_i, A_i) ρ_i ∇log π_θ(y_i|x) − κ ∇KL(π_θ(·|x) ‖ π_ref(·|x)),

with ``ψ' = ∂ψ/∂ρ`` of the clipped term (taken by autodiff of
:func:`theory.grpo.clipped_term`, so kinks follow the same subgradient as
:func:`synthetic.exact.surrogate_gradient`) and the KL of the instance's own prompt.

The pointwise primitives (:func:`instance_gradient_bound`, :func:`single_sample_tv`,
:func:`exact_group_tv`, :func:`behaviour_gap`, :func:`lemma1_bound_at`) are jittable
and vmappable over (θ, β); ``n`` and ``dual_clip`` are static. The region
estimators take sups of them over (θ, β) pairs — the secant form of THEORY.md §2.
"""

import math
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from synthetic.exact import advantage_table, staleness_bias, surrogate_gradient
from theory.bounds import lemma1_constant
from theory.grpo import clipped_term

MAX_EXACT_INSTANCES = 100_000
"""Above this many (prompt, answer-multiset) instances G and the group TV switch to upper bounds."""


@lru_cache(maxsize=64)
def answer_multisets(n, n_answers):
    """All count vectors ``c ∈ N^Y`` with ``Σ c = n`` (the ``C(n+Y−1, n)`` unordered groups), and their log multinomials."""
    def compositions(total, slots):
        if slots == 1:
            yield (total,)
            return
        for first in range(total, -1, -1):
            for rest in compositions(total - first, slots - 1):
                yield (first, *rest)

    counts = np.array(list(compositions(n, n_answers)), dtype=float)  # [C, Y]
    log_multinomial = math.lgamma(n + 1) - np.sum(np.vectorize(math.lgamma)(counts + 1), axis=1)  # [C]
    return counts, log_multinomial


def exact_is_cheap(n, n_prompts, n_answers, max_instances=MAX_EXACT_INSTANCES):
    """Whether enumerating the answer multisets of every prompt stays under ``max_instances``."""
    return n_prompts * math.comb(n + n_answers - 1, n) <= max_instances


def _kl_gradients(logp_fn, theta, theta_ref):
    """``∇_θ KL(π_θ(·|x) ‖ π_ref(·|x))`` per prompt, ``[P, d]``."""
    logp_ref = jax.lax.stop_gradient(logp_fn(theta_ref))

    def per_prompt(params):
        logp = logp_fn(params)
        return jnp.sum(jnp.exp(logp) * (logp - logp_ref), axis=-1)

    return jax.jacrev(per_prompt)(theta)


def _sample_coefficients(logp_fn, theta, beta, reward, n, eps, dual_clip):
    """Per answer y and success count s of the *other* n−1 samples: ``∇ψ = coef[p, y, s] · ∇_θ log π_θ(y|x)``.

    Returns ``coef [P, Y, n] = ψ'(ρ, A(r_y, s)) ρ``.
    """
    rho = jnp.exp(logp_fn(theta) - jax.lax.stop_gradient(logp_fn(beta)))  # [P, Y]
    adv = advantage_table(n)[reward.astype(jnp.int32)]  # [P, Y, n]
    rho_b = jnp.broadcast_to(rho[..., None], adv.shape)
    dpsi = jax.grad(lambda r: jnp.sum(clipped_term(r, adv, eps, dual_clip)))(rho_b)
    return dpsi * rho_b


def instance_gradient_bound(logp_fn, theta, beta, reward, prompt_weights, n, eps, kappa=0.0, theta_ref=None,
                            dual_clip=None, max_instances=MAX_EXACT_INSTANCES, score_norm=None):
    """G at one pair (7): ``max_z ‖∇_θ ℓ(θ; β, z)‖`` over every group instance of a prompt with weight > 0.

    Exact (a max over all answer multisets, the gradient depends on no order)
    when ``P·C(n+Y−1, n) ≤ max_instances``; otherwise the upper bound
    ``max_S (1/n)[S·max_{r=1}‖∇ψ‖ + (n−S)·max_{r=0}‖∇ψ‖] + κ‖∇KL_x‖`` over the
    feasible success counts S (triangle inequality), where ``‖∇ψ‖ = |coef|·‖∇ log π‖``
    needs only the score norms: ``score_norm(θ) → [P, Y]`` gives them when the
    policy has a closed form, else they come from the ``[P, Y, d]`` Jacobian.
    Without ``theta_ref`` there is no KL term.
    """
    coef = _sample_coefficients(logp_fn, theta, beta, reward, n, eps, dual_clip)
    n_prompts, n_answers = reward.shape
    no_kl = theta_ref is None or (isinstance(kappa, (int, float)) and kappa == 0)  # κ may be traced (vmapped)
    kl_grad = (jnp.zeros((n_prompts, theta.shape[0])) if no_kl
               else kappa * _kl_gradients(logp_fn, theta, theta_ref))  # [P, d]
    live = prompt_weights > 0
    if exact_is_cheap(n, n_prompts, n_answers, max_instances):
        score = jax.jacfwd(logp_fn)(theta)  # [P, Y, d]; forward mode: d ≪ P·Y outputs
        counts, _ = answer_multisets(n, n_answers)
        counts = jnp.asarray(counts)  # [C, Y]
        successes = reward @ counts.T  # [P, C]
        others = jnp.clip(successes[:, :, None] - reward[:, None, :], 0, n - 1).astype(jnp.int32)  # [P, C, Y]
        per_answer = jnp.take_along_axis(jnp.broadcast_to(coef[:, None], (*others.shape, n)), others[..., None],
                                         axis=-1)[..., 0]  # [P, C, Y]
        grads = jnp.einsum("pcy,pyd->pcd", counts[None] * per_answer / n, score) - kl_grad[:, None, :]
        norms = jnp.sqrt(jnp.sum(grads * grads, axis=-1))  # [P, C]
        return jnp.max(jnp.where(live[:, None], norms, 0.0))
    if score_norm is None:
        score = jax.jacfwd(logp_fn)(theta)
        norms = jnp.sqrt(jnp.sum(score * score, axis=-1))
    else:
        norms = score_norm(theta)
    sample_norm = jnp.abs(coef) * norms[..., None]  # [P, Y, n]
    is_correct = (reward > 0)[..., None]
    s = jnp.arange(n + 1)[None]  # [1, n+1]: the success count S
    right = jnp.max(jnp.where(is_correct, sample_norm, 0.0), axis=1)  # [P, n]: s = S − 1
    wrong = jnp.max(jnp.where(is_correct, 0.0, sample_norm), axis=1)  # [P, n]: s = S
    right = jnp.concatenate([jnp.zeros((n_prompts, 1)), right], axis=1)  # [P, n+1] indexed by S
    wrong = jnp.concatenate([wrong, jnp.zeros((n_prompts, 1))], axis=1)
    feasible = ((s == 0) | jnp.any(reward > 0, axis=1)[:, None]) & (
        (s == n) | jnp.any(reward == 0, axis=1)[:, None])  # [P, n+1]
    per_count = (s * right + (n - s) * wrong) / n + jnp.sqrt(jnp.sum(kl_grad * kl_grad, axis=-1))[:, None]
    return jnp.max(jnp.where(feasible & live[:, None], per_count, 0.0))


def single_sample_tv(logp_a, logp_b, prompt_weights):
    """``E_x TV(π_a(·|x), π_b(·|x)) = Σ_x w_x ½ Σ_y |π_a − π_b|``; a group of n has ``TV ≤ n ×`` this (§7, §8)."""
    per_prompt = 0.5 * jnp.sum(jnp.abs(jnp.exp(logp_a) - jnp.exp(logp_b)), axis=-1)
    return jnp.sum(prompt_weights * per_prompt)


def exact_group_tv(logp_a, logp_b, prompt_weights, n):
    """``TV(D_a, D_b)`` of n-sample groups (9), exactly, as a jittable sum over answer multisets.

    Same quantity as :func:`synthetic.exact.group_tv` (numpy); cost ``P·C(n+Y−1, n)``.
    """
    counts, log_multinomial = answer_multisets(n, logp_a.shape[-1])
    counts, log_multinomial = jnp.asarray(counts), jnp.asarray(log_multinomial)
    prob_a = jnp.exp(log_multinomial[None] + logp_a @ counts.T)  # [P, C]
    prob_b = jnp.exp(log_multinomial[None] + logp_b @ counts.T)
    return jnp.sum(prompt_weights * 0.5 * jnp.sum(jnp.abs(prob_a - prob_b), axis=-1))


def group_tv_bound(logp_a, logp_b, prompt_weights, n, max_instances=MAX_EXACT_INSTANCES):
    """``TV(D_a, D_b)``: exact when cheap, else the upper bound ``min(1, n · E_x TV(π_a, π_b))``."""
    n_prompts, n_answers = logp_a.shape
    if exact_is_cheap(n, n_prompts, n_answers, max_instances):
        return exact_group_tv(logp_a, logp_b, prompt_weights, n)
    return jnp.minimum(1.0, n * single_sample_tv(logp_a, logp_b, prompt_weights))


def behaviour_gap(logp_fn, theta, beta, reward, prompt_weights, n, eps, kappa=0.0, theta_ref=None, dual_clip=None):
    """Numerator of the secant L_β (10): ``‖E_{z~D_θ}[∇ℓ(θ; β, z) − ∇ℓ(θ; θ, z)]‖``, exactly."""
    args = (reward, prompt_weights, n, eps, kappa, theta_ref, dual_clip)
    stale_ratio = surrogate_gradient(logp_fn, theta, beta, *args, sampler=theta)
    on_policy = surrogate_gradient(logp_fn, theta, theta, *args)
    difference = stale_ratio - on_policy
    return jnp.sqrt(jnp.sum(difference * difference))


class Lemma1Terms(NamedTuple):
    """Lemma 1 at one pair (θ, β): ``‖b‖ ≤ 2 G · TV(D_β, D_θ) + gap``, each term exact or an upper bound."""

    bias_norm: jax.Array
    """``‖b‖ = ‖g(θ, β) − g_on(θ)‖`` (17), exact."""
    G: jax.Array
    """:func:`instance_gradient_bound` at (θ, β)."""
    tv: jax.Array
    """``TV(D_β, D_θ)``: :func:`group_tv_bound`."""
    gap: jax.Array
    """:func:`behaviour_gap`."""
    bound: jax.Array
    """``2 G · tv + gap`` ≥ bias_norm."""
    distance: jax.Array
    """``‖θ − β‖`` (Euclidean)."""


def lemma1_bound_at(logp_fn, theta, beta, reward, prompt_weights, n, eps, kappa=0.0, theta_ref=None,
                    dual_clip=None, max_instances=MAX_EXACT_INSTANCES, score_norm=None):
    """Both terms of Lemma 1's split of ``b`` (THEORY.md §4) at one pair, and the exact ‖b‖ they bound.

    ``score_norm``: the policy's closed-form score norms, if any (:func:`instance_gradient_bound`).
    """
    args = (reward, prompt_weights, n, eps, kappa, theta_ref, dual_clip)
    bias, _, _ = staleness_bias(logp_fn, theta, beta, *args)
    G = instance_gradient_bound(logp_fn, theta, beta, *args, max_instances=max_instances, score_norm=score_norm)
    tv = group_tv_bound(logp_fn(theta), logp_fn(beta), prompt_weights, n, max_instances)
    gap = behaviour_gap(logp_fn, theta, beta, *args)
    return Lemma1Terms(
        bias_norm=jnp.sqrt(jnp.sum(bias * bias)),
        G=G,
        tv=tv,
        gap=gap,
        bound=2.0 * G * tv + gap,
        distance=jnp.sqrt(jnp.sum((theta - beta) ** 2)),
    )


# ---------------------------------------------------------------- region estimators


@dataclass(frozen=True, eq=False)
class DiscreteTask:
    """A discrete policy with binary rewards under GRPO: everything the constants depend on but (θ, β)."""

    logp_fn: Callable
    """``θ [d] → log π_θ(y|x) [P, Y]``."""
    reward: jax.Array
    """Binary rewards ``[P, Y]``."""
    prompt_weights: jax.Array
    """Prompt distribution ``[P]``."""
    n: int
    """Group size."""
    eps: float
    """Clip ε of (3)."""
    kappa: float = 0.0
    """KL coefficient κ."""
    theta_ref: jax.Array | None = None
    """Reference parameters of the KL term (none: no KL)."""
    dual_clip: float | None = None
    """Dual-clip constant c > 1, or none."""

    def terms(self, theta, beta):
        """:func:`lemma1_bound_at` for this task."""
        return lemma1_bound_at(self.logp_fn, theta, beta, self.reward, self.prompt_weights, self.n, self.eps,
                               self.kappa, self.theta_ref, self.dual_clip)


class RegionConstants(NamedTuple):
    """Local constants (7), (9), (10) as sups over a stated set of (θ, β) pairs, secant form (§2 [choice])."""

    G: float
    L_D: float
    L_beta: float
    C_b: float
    """Lemma 1: ``2 G L_D + L_β``."""
    region: str
    """What the pairs were drawn from."""
    n_pairs: int
    max_pair_distance: float
    """Largest ``‖θ − β‖_∞`` among the pairs (what the analytic bounds of §8 take as their radius)."""


@partial(jax.jit, static_argnames=("logp_fn", "n", "dual_clip", "batch_size"))
def _pair_terms(logp_fn, thetas, betas, reward, prompt_weights, n, eps, kappa, theta_ref, dual_clip, batch_size):
    def one(pair):
        return lemma1_bound_at(logp_fn, *pair, reward, prompt_weights, n, eps, kappa, theta_ref, dual_clip)

    return jax.lax.map(one, (thetas, betas), batch_size=batch_size)


def pair_terms(task, thetas, betas, batch_size=16):
    """:class:`Lemma1Terms` at every pair ``(thetas[i], betas[i])`` (each ``[N, d]``), compiled once per task shape."""
    return _pair_terms(task.logp_fn, jnp.asarray(thetas, float), jnp.asarray(betas, float), task.reward,
                       task.prompt_weights, task.n, task.eps, task.kappa, task.theta_ref, task.dual_clip,
                       min(batch_size, len(thetas)))


def summarize_terms(terms, thetas, betas, region):
    """:class:`RegionConstants` from the :class:`Lemma1Terms` of a set of pairs: sups of G, TV/‖θ−β‖, gap/‖θ−β‖."""
    distance = np.asarray(terms.distance)
    apart = distance > 0
    G = float(jnp.max(terms.G))
    L_D = float(np.max(np.asarray(terms.tv)[apart] / distance[apart], initial=0.0))
    L_beta = float(np.max(np.asarray(terms.gap)[apart] / distance[apart], initial=0.0))
    return RegionConstants(G=G, L_D=L_D, L_beta=L_beta, C_b=float(lemma1_constant(G, L_D, L_beta)), region=region,
                           n_pairs=len(distance),
                           max_pair_distance=float(np.max(np.abs(np.asarray(thetas) - np.asarray(betas)))))


def pair_constants(task, thetas, betas, region, batch_size=16):
    """G, L_D, L_β as sups over the pairs ``(thetas[i], betas[i])`` (each ``[N, d]``)."""
    return summarize_terms(pair_terms(task, thetas, betas, batch_size), thetas, betas, region)


def ball_pairs(center, radius, n_points, seed):
    """``n_points`` pairs (θ, β) in the ∞-ball ``‖· − center‖_∞ ≤ radius``.

    Half are far pairs: β a random corner, θ a corner (a quarter of all pairs) or
    uniform — corners are where the ratios are extreme;
    half put β at log-uniform distances 1e-3·2r … 2r from θ along a random sign
    direction (the secant sups of L_D and L_β can sit at short distances).
    """
    key_theta, key_corner, key_beta, key_sign, key_scale = jax.random.split(jax.random.PRNGKey(seed), 5)
    d = center.shape[0]
    half, quarter = n_points // 2, n_points // 4
    theta = jax.random.uniform(key_theta, (n_points, d), minval=-1.0, maxval=1.0)
    corner = jnp.sign(jax.random.uniform(key_corner, (quarter, d), minval=-1.0, maxval=1.0))
    theta = theta.at[:quarter].set(corner)
    far = jnp.sign(jax.random.uniform(key_beta, (half, d), minval=-1.0, maxval=1.0))
    direction = jnp.sign(jax.random.uniform(key_sign, (n_points - half, d), minval=-1.0, maxval=1.0))
    scale = 10.0 ** jax.random.uniform(key_scale, (n_points - half, 1), minval=-3.0, maxval=0.0)
    near = jnp.clip(theta[half:] + 2.0 * scale * direction, -1.0, 1.0)
    beta = jnp.concatenate([far, near])
    return center[None] + radius * theta, center[None] + radius * beta


def estimate_constants(task, center, radius, n_points=64, seed=0):
    """G, L_D, L_β as sups over ``n_points`` pairs in the ∞-ball of ``radius`` around ``center`` (:func:`ball_pairs`)."""
    thetas, betas = ball_pairs(center, radius, n_points, seed)
    region = f"pairs in the ∞-ball ‖θ − θ_c‖_∞ ≤ {radius:g} (Euclidean norms in the constants), seed {seed}"
    return pair_constants(task, thetas, betas, region)


def trajectory_pairs(trajectory, tau):
    """The (θ_t, θ_{t−j}) pairs, ``1 ≤ j ≤ τ − 1``, of a trajectory ``[T, d]``: every (θ_t, β_t) of (11)–(12)."""
    trajectory = jnp.asarray(trajectory)
    lags = [(trajectory[j:], trajectory[:-j]) for j in range(1, min(tau, trajectory.shape[0]))]
    if not lags:
        return trajectory, trajectory
    return jnp.concatenate([a for a, _ in lags]), jnp.concatenate([b for _, b in lags])


def trajectory_constants(task, trajectory, tau):
    """G, L_D, L_β as sups over the pairs of :func:`trajectory_pairs` (the region training visited)."""
    thetas, betas = trajectory_pairs(trajectory, tau)
    return pair_constants(task, thetas, betas, f"pairs (θ_t, θ_t−j), 1 ≤ j < {tau}, of a {len(trajectory)}-point trajectory")


def update_bound(trajectory, eta):
    """U (8) of a trajectory ``[T, d]``: ``max_t ‖θ_{t+1} − θ_t‖ / η``."""
    steps = jnp.diff(jnp.asarray(trajectory), axis=0)
    return float(jnp.max(jnp.sqrt(jnp.sum(steps * steps, axis=-1)))) / eta
