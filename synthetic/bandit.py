"""Softmax bandit policies with binary verifiable rewards (THEORY.md §8).

* single prompt: K arms, tabular logits ``θ ∈ R^K``, ``π = softmax(θ)``;
* multi prompt, log-linear: P prompts, features ``φ(x, a) ∈ R^d``, shared
  ``θ ∈ R^d``, ``π(a|x) = softmax_a(φ(x, a)·θ)``.

Each returns ``log π_θ(a|x)`` as ``[P, K]`` so that :mod:`synthetic.exact`
treats every discrete policy alike. Beside the policies: sampled group
gradients (4), a short asynchronous SGD loop (6), (11)–(12), and the bias and
constants reports behind ``repro bias`` and ``repro constants``.
"""

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from synthetic.constants import DiscreteTask, ball_pairs, estimate_constants, pair_terms, summarize_terms, \
    update_bound
from synthetic.exact import staleness_bias, surrogate_gradient
from theory import softmax_bandit
from theory.bounds import bias_bound, lemma1_constant
from theory.grpo import advantages, ratio, surrogate


def softmax_logp(theta):
    """Single-prompt bandit: ``log softmax(θ)`` as a ``[1, K]`` table."""
    return jax.nn.log_softmax(theta)[None, :]


def loglinear_logp(theta, features):
    """Log-linear contextual bandit: ``log softmax_a(φ(x, a)·θ)``, features ``[P, K, d]`` → ``[P, K]``."""
    return jax.nn.log_softmax(jnp.einsum("pkd,d->pk", features, theta), axis=-1)


# ---------------------------------------------------------------- tasks


def _check_group(n, eps, kappa, dual_clip):
    if n < 2:
        raise ValueError(f"group size n = {n} must be ≥ 2")
    for name, value in (("eps", eps), ("kappa", kappa)):
        if not math.isfinite(value):
            raise ValueError(f"{name} = {value} is not finite")
    if eps <= 0:
        raise ValueError(f"eps = {eps} must be > 0")
    if kappa < 0:
        raise ValueError(f"kappa = {kappa} must be ≥ 0")
    if dual_clip is not None and not 1.0 + eps < dual_clip < math.inf:
        raise ValueError(f"dual_clip = {dual_clip} must be finite and > 1 + eps")


def bandit_task(n_arms, correct, n, eps, kappa=0.0, theta_ref=None, dual_clip=None):
    """Single-prompt K-armed bandit, reward 1 on the arms in ``correct``; ``theta_ref`` defaults to uniform logits."""
    _check_group(n, eps, kappa, dual_clip)
    if n_arms < 2:
        raise ValueError(f"K = {n_arms} arms: a bandit needs K ≥ 2")
    bad = [a for a in correct if not 0 <= a < n_arms]
    if bad or not correct:
        raise ValueError(f"correct arm {bad[0] if bad else 'list is empty'}: arms are 0..{n_arms - 1}")
    theta_ref = jnp.zeros(n_arms) if theta_ref is None else jnp.asarray(theta_ref, float)
    if theta_ref.shape != (n_arms,):
        raise ValueError(f"reference logits have {theta_ref.shape[0]} entries, expected K = {n_arms}")
    reward = jnp.zeros((1, n_arms)).at[0, jnp.asarray(sorted(set(correct)))].set(1.0)
    return DiscreteTask(softmax_logp, reward, jnp.ones(1), n, eps, kappa, theta_ref, dual_clip)


def contextual_task(n_prompts, n_answers, dim, n, eps, kappa=0.0, seed=0, dual_clip=None):
    """Log-linear bandit: features ``φ ~ N(0, 1/d)``, one correct answer per prompt, uniform prompts, seeded.

    Returns the task and its features ``[P, K, d]``; the reference policy is θ_ref = 0 (uniform).
    """
    _check_group(n, eps, kappa, dual_clip)
    for name, value, least in (("prompts", n_prompts, 1), ("answers", n_answers, 2), ("dim", dim, 1)):
        if value < least:
            raise ValueError(f"{name} = {value} must be ≥ {least}")
    key_features, key_correct = jax.random.split(jax.random.PRNGKey(seed))
    features = jax.random.normal(key_features, (n_prompts, n_answers, dim)) / math.sqrt(dim)
    correct = jax.random.randint(key_correct, (n_prompts,), 0, n_answers)
    reward = jax.nn.one_hot(correct, n_answers)
    task = DiscreteTask(partial(loglinear_logp, features=features), reward, jnp.full(n_prompts, 1.0 / n_prompts), n,
                        eps, kappa, jnp.zeros(dim), dual_clip)
    return task, features


# ---------------------------------------------------------------- sampled gradients and an async loop


def group_gradients(task, theta, beta, key, n_groups):
    """Per-group surrogate gradients ``∇_θ ℓ(θ; β, z_b)`` (3) of ``n_groups`` groups ``z_b ~ D_β``, ``[B, d]``.

    Built from :mod:`theory.grpo` on sampled answers (the Monte-Carlo side of (4), (15)).
    """
    logp_beta = task.logp_fn(beta)
    key_prompt, key_answer = jax.random.split(key)
    prompts = jax.random.choice(key_prompt, task.reward.shape[0], (n_groups,), p=task.prompt_weights)
    answers = jax.random.categorical(key_answer, logp_beta[prompts][:, None, :], axis=-1,
                                     shape=(n_groups, task.n))  # [B, n]
    rewards = task.reward[prompts[:, None], answers]
    adv = advantages(rewards)
    logp_ref = None if task.theta_ref is None else task.logp_fn(task.theta_ref)

    def ell(params, prompt, answer, adv_b):
        logp = task.logp_fn(params)
        rho = ratio(logp[prompt, answer], logp_beta[prompt, answer])
        kl = 0.0 if logp_ref is None else jnp.sum(jnp.exp(logp[prompt]) * (logp[prompt] - logp_ref[prompt]))
        return surrogate(rho, adv_b, task.eps, kl, task.kappa, task.dual_clip)

    return jax.vmap(jax.grad(ell), in_axes=(None, 0, 0, 0))(theta, prompts, answers, adv)


@partial(jax.jit, static_argnames=("task", "tau", "steps", "n_groups", "seed"))
def async_sgd(task, theta_0, eta, tau, steps, n_groups=None, seed=0):
    """Asynchronous ascent (6) with rollout reuse (11)–(12): ``β_t = θ_{⌊t/τ⌋τ}``; trajectory ``[steps+1, d]``.

    ``u_t`` is the exact ``g(θ_t, β_t)`` when ``n_groups`` is None, else the
    minibatch mean of ``n_groups`` sampled group gradients (4).
    """
    keys = jax.random.split(jax.random.PRNGKey(seed), steps)

    def step(carry, inputs):
        theta, beta = carry
        t, key = inputs
        beta = jnp.where(t % tau == 0, theta, beta)
        if n_groups is None:
            update = surrogate_gradient(task.logp_fn, theta, beta, task.reward, task.prompt_weights, task.n, task.eps,
                                        task.kappa, task.theta_ref, task.dual_clip)
        else:
            update = jnp.mean(group_gradients(task, theta, beta, key, n_groups), axis=0)
        theta_next = theta + eta * update
        return (theta_next, beta), theta_next

    _, path = jax.lax.scan(step, (theta_0, theta_0), (jnp.arange(steps), keys))
    return jnp.concatenate([theta_0[None], path])


# ---------------------------------------------------------------- reports


def _ref_span(center, theta_ref, radius, features=None):
    """Upper bound on ``span_a((θ − θ_ref)·φ_a)`` over the ∞-ball of ``radius`` around ``center``."""
    u = np.asarray(center) - np.asarray(theta_ref)
    if features is None:
        return float(np.ptp(u)) + 2.0 * radius
    logits = np.einsum("pkd,d->pk", np.asarray(features), u)
    return float(np.max(np.ptp(logits, axis=-1))) + softmax_bandit.loglinear_geometry(features, radius)[1]


def analytic_constants(task, center, radius, features=None):
    """§8 upper bounds on G, L_D, L_β, C_b (and U = G for plain ascent) over the ∞-ball of ``radius``.

    Pairs in the ball are at most ``2·radius`` apart in ∞-norm.
    """
    if features is None:
        score_bound, log_ratio = softmax_bandit.tabular_geometry(2.0 * radius)
    else:
        score_bound, log_ratio = softmax_bandit.loglinear_geometry(features, 2.0 * radius)
    ref_span = 0.0 if task.theta_ref is None else _ref_span(center, task.theta_ref, radius, features)
    G = softmax_bandit.analytic_G(task.n, task.eps, task.kappa, log_ratio, score_bound, ref_span, task.dual_clip)
    L_D = softmax_bandit.analytic_L_D(task.n, score_bound)
    L_beta = softmax_bandit.analytic_L_beta(task.eps, log_ratio, score_bound, task.dual_clip)
    return {"G": G, "U": G, "L_D": L_D, "L_beta": L_beta, "C_b": float(lemma1_constant(G, L_D, L_beta))}


_staleness_bias = jax.jit(staleness_bias, static_argnames=("logp_fn", "n", "dual_clip"))


def bias_report(task, theta, beta, n_points=64, seed=0):
    """Exact staleness bias (17) at (θ, β) and Lemma 1's bound with constants over a region holding both.

    The region is the ∞-ball around ``(θ+β)/2`` of radius ``‖θ − β‖_∞/2``; its
    sampled pairs include (θ, β) itself, so ``bias_norm ≤ bound`` is guaranteed
    by Lemma 1 whenever the per-pair terms are right.
    """
    theta, beta = jnp.asarray(theta, float), jnp.asarray(beta, float)
    if theta.shape != beta.shape or theta.shape != task.theta_ref.shape:
        raise ValueError(f"theta, beta and ref have {theta.shape[0]}, {beta.shape[0]} and "
                         f"{task.theta_ref.shape[0]} entries; they must match")
    bias, g_stale, g_on = _staleness_bias(task.logp_fn, theta, beta, task.reward, task.prompt_weights, task.n,
                                          task.eps, task.kappa, task.theta_ref, task.dual_clip)
    center, radius = (theta + beta) / 2.0, float(jnp.max(jnp.abs(theta - beta))) / 2.0
    thetas, betas = ball_pairs(center, radius, n_points, seed)
    thetas, betas = jnp.concatenate([theta[None], thetas]), jnp.concatenate([beta[None], betas])
    terms = pair_terms(task, thetas, betas)
    constants = summarize_terms(terms, thetas, betas, f"(θ, β) and {n_points} pairs in the ∞-ball around (θ+β)/2 "
                                                      f"of radius ‖θ − β‖_∞/2 = {radius:g}, seed {seed}")
    here = jax.tree.map(lambda leaf: leaf[0], terms)
    stale_drift = float(jnp.linalg.norm(theta - beta))
    analytic = analytic_constants(task, center, radius)
    return {
        "bias_norm": float(jnp.linalg.norm(bias)),
        "bias": np.asarray(bias).tolist(),
        "g_stale": np.asarray(g_stale).tolist(),
        "g_on": np.asarray(g_on).tolist(),
        "stale_drift": stale_drift,
        "G": constants.G,
        "L_D": constants.L_D,
        "L_beta": constants.L_beta,
        "C_b": constants.C_b,
        "bound": float(bias_bound(constants.C_b, stale_drift)),
        "pointwise_bound": float(here.bound),
        "tv": float(here.tv),
        "behaviour_gap": float(here.gap),
        "analytic": {**analytic, "bound": analytic["C_b"] * stale_drift},
        "region": constants.region,
        "n_pairs": constants.n_pairs,
    }


def constants_report(task, center, radius, n_points=64, seed=0, features=None, tau=4, steps=50, n_groups=8):
    """G, U, L_D, L_β over the ∞-ball of ``radius`` around ``center``, beside their §8 upper bounds.

    U is measured on an async SGD run (sampled groups, reuse τ) from ``center``
    with ``η = radius / (steps · analytic G)``, so the run cannot leave the ball.
    """
    constants = estimate_constants(task, center, radius, n_points, seed)
    analytic = analytic_constants(task, center, radius, features)
    eta = radius / (steps * analytic["G"])
    path = async_sgd(task, center, eta, tau, steps, n_groups, seed)
    report = {
        "G": constants.G, "U": update_bound(path, eta), "L_D": constants.L_D, "L_beta": constants.L_beta,
        "C_b": constants.C_b,
        **{f"{name}_analytic": value for name, value in analytic.items()},
        "region": constants.region, "n_pairs": constants.n_pairs, "radius": radius,
        "max_pair_distance_inf": constants.max_pair_distance,
        "U_run": {"eta": eta, "tau": tau, "steps": steps, "groups_per_step": n_groups, "seed": seed},
    }
    return report
