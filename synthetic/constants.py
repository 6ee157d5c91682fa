"""Local constants of docs/theory.md §2 for any discrete policy, and both splits of the staleness bias.

A :class:`synthetic.exact.DiscreteTask` holds the policy (``logp(θ) → [P, Y]``),
the reward table ``r̄[P, Y]`` and the knobs of (3). A group instance ``z`` is a
prompt x, n answers and their rewards; its surrogate gradient (3) is

    ∇ℓ(θ; β, z) = (1/n) Σ_i ψ'(ρ_i, A_i) ρ_i ∇log π_θ(y_i|x) − κ ∇KL(π_θ(·|x) ‖ π_ref(·|x)),

with ``ψ' = ∂ψ/∂ρ`` of the clipped term (:func:`theory.grpo.clipped_slopes`, the derivative
:func:`synthetic.exact.surrogate_gradient` takes too, so kinks follow the same subgradient) and the KL of the
instance's own prompt.

The staleness bias ``b = g(θ, β) − g_on(θ)`` splits two ways (docs/substrate.md):

* Lemma 1: ``(E_{D_β} − E_{D_θ})[∇ℓ(θ; β, ·)] + E_{D_θ}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]``, so
  ``‖b‖ ≤ 2 G · TV + gap`` with ``G = sup_z ‖∇ℓ(θ; β, z)‖`` (its ratios can be huge);
* the other split: ``(E_{D_β} − E_{D_θ})[∇ℓ(θ; θ, ·)] + E_{D_β}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]``, so
  ``‖b‖ ≤ 2 G_on · TV + gap_β`` with ``G_on = sup_z ‖∇ℓ(θ; θ, z)‖`` (no ratio: ρ ≡ 1).

The pointwise primitives are jittable and vmappable over (θ, β). The region
estimators take sups of them over (θ, β) pairs — the secant form of docs/theory.md §2.
"""

import math
from functools import lru_cache, partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from synthetic.exact import advantage_table, gradient_mappings
from theory.bounds import lemma1_constant, split_bound
from theory.grpo import clipped_slopes
from theory.pipeline import per_prompt_kl

MAX_EXACT_INSTANCES = 100_000
"""Above this many (prompt, answer-and-reward multiset) instances G and the group TV switch to upper bounds."""


@lru_cache(maxsize=64)
def answer_multisets(n, n_answers):
    """All count vectors ``c ∈ N^Y`` with ``Σ c = n`` (the ``C(n+Y−1, n)`` unordered groups), and their log
    multinomials."""
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


def _kl_gradients(task, theta):
    """``κ ∇_θ KL(π_θ(·|x) ‖ π_ref(·|x))`` per prompt, ``[P, d]`` (zeros without a KL term)."""
    if not task.has_kl:
        return jnp.zeros((task.reward.shape[0], theta.shape[0]))
    logp_ref = jax.lax.stop_gradient(task.logp(task.theta_ref))
    return task.kappa * jax.jacrev(lambda params: per_prompt_kl(task.logp(params), logp_ref))(theta)


def _unit_coefficients(task, theta, beta):
    """``[2, P, Y]``: the coefficient ``ψ'(ρ, A) ρ`` at A = −1 (row 0) and A = +1 (row 1); at any A it is
    ``|A|`` times the row of A's sign, since every clip of (3) is positively homogeneous in A."""
    rho = jnp.exp(task.logp(theta) - jax.lax.stop_gradient(task.logp(beta)))  # [P, Y]
    sign = jnp.array([-1.0, 1.0])[:, None, None]
    rho_b = jnp.broadcast_to(rho[None], (2, *rho.shape))
    dpsi = clipped_slopes(rho_b, sign, task.eps, task.dual_clip)[0]
    return dpsi * rho_b


def _sample_coefficients(task, theta, beta):
    """``coef [2, P, Y, n] = ψ'(ρ, A(r, s)) ρ`` for a sample of answer y with reward r when s of the other n−1
    succeed: its gradient is ``coef · ∇_θ log π_θ(y|x)``. A(0, s) ≤ 0 ≤ A(1, s) (1), so row r of
    :func:`_unit_coefficients` scaled by |A(r, s)|."""
    adv = jnp.abs(jnp.asarray(advantage_table(task.n)))  # [2, n]
    return adv[:, None, None, :] * _unit_coefficients(task, theta, beta)[..., None]


def score_norms(task, theta):
    """``‖∇_θ log π_θ(y|x)‖ [P, Y]``: the policy's closed form where it has one, else from the Jacobian."""
    closed_form = getattr(task.policy, "score_norm", None)
    if closed_form is not None:
        return closed_form(theta)
    score = jax.jacfwd(task.logp)(theta)
    return jnp.sqrt(jnp.sum(score * score, axis=-1))


def instance_gradient_bound(task, theta, beta, max_instances=MAX_EXACT_INSTANCES, norms=None):
    """G at one pair (7): ``max_z ‖∇_θ ℓ(θ; β, z)‖`` over every group instance (answers and rewards) of a prompt
    with weight > 0.

    Exact (a max over all multisets of (answer, reward), the gradient depends on no order) when
    ``P·C(n+2Y−1, n) ≤ max_instances``; otherwise the upper bound
    ``max_S (1/n)[S·max_{r=1}‖∇ψ‖ + (n−S)·max_{r=0}‖∇ψ‖] + κ‖∇KL_x‖`` over the feasible success counts S
    (triangle inequality), where ``‖∇ψ‖ = |coef|·‖∇ log π‖`` needs only the score norms (``norms``, else
    :func:`score_norms`).
    """
    n, (n_prompts, n_answers) = task.n, task.reward.shape
    kl_grad = _kl_gradients(task, theta)  # [P, d]
    live = task.prompt_weights > 0
    possible = jnp.stack([task.reward < 1, task.reward > 0])  # [2, P, Y]: reward r can follow answer y
    if exact_is_cheap(n, n_prompts, 2 * n_answers, max_instances):
        coef = _sample_coefficients(task, theta, beta)  # [2, P, Y, n]
        score = jax.jacfwd(task.logp)(theta)  # [P, Y, d]; forward mode: d ≪ P·Y outputs
        counts = jnp.asarray(answer_multisets(n, 2 * n_answers)[0])  # [C, 2Y]: (answer y, reward r) at r·Y + y
        ext_reward = jnp.repeat(jnp.arange(2.0), n_answers)  # [2Y]
        others = jnp.clip((counts @ ext_reward)[:, None] - ext_reward[None], 0, n - 1).astype(jnp.int32)  # [C, 2Y]
        ext_coef = jnp.concatenate([coef[0], coef[1]], axis=1)  # [P, 2Y, n]
        per_answer = ext_coef[:, jnp.arange(2 * n_answers)[None, :], others]  # [P, C, 2Y]
        weight = counts[None] * per_answer / n
        grads = jnp.einsum("pcy,pyd->pcd", weight[..., :n_answers] + weight[..., n_answers:], score) - kl_grad[:, None]
        norm = jnp.sqrt(jnp.sum(grads * grads, axis=-1))  # [P, C]
        ext_possible = jnp.concatenate([possible[0], possible[1]], axis=1)  # [P, 2Y]
        feasible = jnp.all((counts[None] == 0) | ext_possible[:, None, :], axis=-1)  # [P, C]
        return jnp.max(jnp.where(feasible & live[:, None], norm, 0.0))
    norms = score_norms(task, theta) if norms is None else norms
    # ψ(ρ, A) = |A|·ψ(ρ, sign A) for every clip of (3), so max_y |coef|·‖∇ log π‖ = |A(r, s)| times one max per
    # (reward, prompt): P·Y work per sign instead of P·Y·n
    unit = _unit_coefficients(task, theta, beta)  # [2, P, Y]
    best = jnp.max(jnp.where(possible, jnp.abs(unit) * norms[None], 0.0), axis=2)  # [2, P]
    sample_max = jnp.abs(jnp.asarray(advantage_table(n)))[:, None, :] * best[..., None]  # [2, P, n]
    s = jnp.arange(n + 1)[None]  # [1, n+1]: the success count S
    right = jnp.concatenate([jnp.zeros((n_prompts, 1)), sample_max[1]], axis=1)  # s = S − 1
    wrong = jnp.concatenate([sample_max[0], jnp.zeros((n_prompts, 1))], axis=1)  # s = S
    feasible = (((s == 0) | jnp.any(possible[1], axis=1)[:, None]) & ((s == n) | jnp.any(possible[0], axis=1)[:, None]))
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


class Lemma1Terms(NamedTuple):
    """Both splits of the staleness bias at one pair (θ, β), each term exact or an upper bound."""

    bias_norm: jax.Array
    """``‖b‖ = ‖g(θ, β) − g_on(θ)‖`` (17), exact."""
    G: jax.Array
    """``sup_z ‖∇ℓ(θ; β, z)‖``: :func:`instance_gradient_bound` at (θ, β)."""
    G_on: jax.Array
    """``sup_z ‖∇ℓ(θ; θ, z)‖``: the same at (θ, θ), no importance ratio."""
    tv: jax.Array
    """``TV(D_β, D_θ)``: :func:`group_tv_bound`."""
    gap: jax.Array
    """``‖E_{D_θ}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]‖``, exact: the numerator of the secant L_β (10)."""
    gap_beta: jax.Array
    """``‖E_{D_β}[∇ℓ(θ; β, ·) − ∇ℓ(θ; θ, ·)]‖``, exact."""
    bound: jax.Array
    """Lemma 1: ``2 G · tv + gap`` ≥ bias_norm."""
    bound_alt: jax.Array
    """The other split: ``2 G_on · tv + gap_beta`` ≥ bias_norm."""
    distance: jax.Array
    """``‖θ − β‖`` (Euclidean)."""


def lemma1_bound_at(task, theta, beta, max_instances=MAX_EXACT_INSTANCES):
    """Both splits of ``b`` (docs/theory.md §4, docs/substrate.md) at one pair, and the exact ‖b‖ they bound."""
    g_stale, g_on, g_theta_beta, g_beta_theta = gradient_mappings(task, theta, beta)
    n_prompts, n_answers = task.reward.shape
    norms = None if exact_is_cheap(task.n, n_prompts, 2 * n_answers, max_instances) else score_norms(task, theta)
    G = instance_gradient_bound(task, theta, beta, max_instances, norms)
    G_on = instance_gradient_bound(task, theta, theta, max_instances, norms)
    tv = group_tv_bound(task.logp(theta), task.logp(beta), task.prompt_weights, task.n, max_instances)
    gap = jnp.sqrt(jnp.sum((g_theta_beta - g_on) ** 2))
    gap_beta = jnp.sqrt(jnp.sum((g_stale - g_beta_theta) ** 2))
    return Lemma1Terms(
        bias_norm=jnp.sqrt(jnp.sum((g_stale - g_on) ** 2)),
        G=G,
        G_on=G_on,
        tv=tv,
        gap=gap,
        gap_beta=gap_beta,
        bound=split_bound(G, tv, gap),
        bound_alt=split_bound(G_on, tv, gap_beta),
        distance=jnp.sqrt(jnp.sum((theta - beta) ** 2)),
    )


# ---------------------------------------------------------------- region estimators


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


@partial(jax.jit, static_argnames=("batch_size",))
def _pair_terms(task, thetas, betas, batch_size):
    return jax.lax.map(lambda pair: lemma1_bound_at(task, *pair), (thetas, betas), batch_size=batch_size)


def pair_terms(task, thetas, betas, batch_size=16):
    """:class:`Lemma1Terms` at every pair ``(thetas[i], betas[i])`` (each ``[N, d]``), compiled once per task shape."""
    return _pair_terms(task, jnp.asarray(thetas, float), jnp.asarray(betas, float), min(batch_size, len(thetas)))


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
    """G, L_D, L_β as sups over ``n_points`` pairs in the ∞-ball of ``radius`` around ``center``
    (:func:`ball_pairs`)."""
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
    return pair_constants(task, thetas, betas,
                          f"pairs (θ_t, θ_t−j), 1 ≤ j < {tau}, of a {len(trajectory)}-point trajectory")


def update_bound(trajectory, eta):
    """U (8) of a trajectory ``[T, d]``: ``max_t ‖θ_{t+1} − θ_t‖ / η``."""
    steps = jnp.diff(jnp.asarray(trajectory), axis=0)
    return float(jnp.max(jnp.sqrt(jnp.sum(steps * steps, axis=-1)))) / eta
