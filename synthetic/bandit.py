"""Softmax bandit policies with binary verifiable rewards (docs/theory.md §8).

* single prompt: K arms, tabular logits ``θ ∈ R^K``, ``π = softmax(θ)``;
* multi prompt, log-linear: P prompts, features ``φ(x, a) ∈ R^d``, shared
  ``θ ∈ R^d``, ``π(a|x) = softmax_a(φ(x, a)·θ)``.

Each is a pytree whose ``logp`` returns ``log π_θ(a|x)`` as ``[P, K]``, so that
:mod:`synthetic.exact` and the engine treat every discrete policy alike. Beside
the policies: the bias and constants reports behind ``repro bias`` and
``repro constants`` (U measured on a run of the one engine, :mod:`synthetic.simulate`).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from synthetic.constants import ball_pairs, estimate_constants, pair_terms, summarize_terms
from synthetic.exact import DiscreteTask, staleness_bias
from synthetic.simulate import RunConfig, SimTask, run
from theory import softmax_bandit
from theory.bounds import bias_bound, lemma1_constant


class TablePolicy:
    """Sampling and sampled log-probs of a policy read off its full ``[P, Y]`` table (small answer sets)."""

    def sequence_logp(self, theta, prompt_ids, answer_ids):
        """``log π_θ(y|x)`` of (prompt, answer) id arrays of equal rank."""
        return self.logp(theta)[prompt_ids, answer_ids]

    def sample(self, theta, prompt_ids, key, n):
        """``n`` answers per prompt in ``prompt_ids [B]`` by inverse CDF (one uniform per answer): ids and
        log-probs ``[B, n]``."""
        logp = self.logp(theta)[prompt_ids]  # [B, Y]
        cdf = jnp.cumsum(jnp.exp(logp), axis=-1)
        u = jax.random.uniform(key, (prompt_ids.shape[0], n), dtype=theta.dtype) * cdf[:, -1:]
        answers = jnp.minimum(jax.vmap(jnp.searchsorted)(cdf, u), cdf.shape[-1] - 1)
        return answers, jnp.take_along_axis(logp, answers, axis=-1)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TabularPolicy(TablePolicy):
    """Single prompt, ``π = softmax(θ)``."""

    def on_prompts(self, prompt_ids):
        """Itself: its one prompt is the only one ``prompt_ids`` can name."""
        return self

    def logp(self, theta):
        """``log softmax(θ)`` as a ``[1, K]`` table."""
        return jax.nn.log_softmax(theta)[None, :]

    def score_norm(self, theta):
        """``‖e_a − π‖ = √(1 − 2π_a + Σ π²)`` ``[1, K]`` (§8)."""
        pi = jax.nn.softmax(theta)
        return jnp.sqrt(jnp.maximum(1.0 - 2.0 * pi + jnp.sum(pi * pi), 0.0))[None, :]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class LogLinearPolicy(TablePolicy):
    """``π(a|x) = softmax_a(φ(x, a)·θ)`` with fixed features ``[P, K, d]``."""

    features: jax.Array

    def on_prompts(self, prompt_ids):
        """The same policy on the prompts ``prompt_ids`` alone (their features)."""
        return dataclasses.replace(self, features=self.features[prompt_ids])

    def logp(self, theta):
        """``log softmax_a(φ(x, a)·θ)`` ``[P, K]``."""
        return jax.nn.log_softmax(jnp.einsum("pkd,d->pk", self.features, theta), axis=-1)

    def score_norm(self, theta):
        """``‖φ_a − E_π φ‖`` ``[P, K]`` (§8)."""
        pi = jnp.exp(self.logp(theta))
        centred = self.features - jnp.einsum("pk,pkd->pd", pi, self.features)[:, None, :]
        return jnp.sqrt(jnp.sum(centred * centred, axis=-1))


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
    return DiscreteTask(TabularPolicy(), reward, jnp.ones(1), theta_ref, n, eps, kappa, dual_clip)


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
    task = DiscreteTask(LogLinearPolicy(features), reward, jnp.full(n_prompts, 1.0 / n_prompts), jnp.zeros(dim), n,
                        eps, kappa, dual_clip)
    return task, features


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


_staleness_bias = jax.jit(staleness_bias)


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
    bias, g_stale, g_on = _staleness_bias(task, theta, beta)
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
        "pointwise_bound_alt": float(here.bound_alt),
        "G_here": float(here.G),
        "G_on": float(here.G_on),
        "tv": float(here.tv),
        "behaviour_gap": float(here.gap),
        "behaviour_gap_beta": float(here.gap_beta),
        "analytic": {**analytic, "bound": analytic["C_b"] * stale_drift},
        "region": constants.region,
        "n_pairs": constants.n_pairs,
    }


def constants_report(task, center, radius, n_points=64, seed=0, features=None, tau=4, steps=50, n_groups=8):
    """G, U, L_D, L_β over the ∞-ball of ``radius`` around ``center``, beside their §8 upper bounds.

    U is the largest applied update of an async SGD run of the engine (sampled groups, reuse τ) from ``center``
    with ``η = radius / (steps · analytic G)``, so the run cannot leave the ball.
    """
    constants = estimate_constants(task, center, radius, n_points, seed)
    analytic = analytic_constants(task, center, radius, features)
    eta = radius / (steps * analytic["G"])
    sim = SimTask.from_problem(task, jnp.asarray(center, float))
    metrics = _run(sim, RunConfig(steps=steps, batch=n_groups, exact_every=steps, lemma1=False), eta, tau, seed)
    return {
        "G": constants.G, "U": float(np.max(metrics["update_norm"])), "L_D": constants.L_D,
        "L_beta": constants.L_beta, "C_b": constants.C_b,
        **{f"{name}_analytic": value for name, value in analytic.items()},
        "region": constants.region, "n_pairs": constants.n_pairs, "radius": radius,
        "max_pair_distance_inf": constants.max_pair_distance,
        "U_run": {"eta": eta, "tau": tau, "steps": steps, "groups_per_step": n_groups, "seed": seed},
    }


_run = jax.jit(run, static_argnames=("config",))


def bias_table(r):
    """:func:`bias_report` as the text ``repro bias`` prints."""
    a = r["analytic"]
    return "\n".join([
        f"‖b‖ = {r['bias_norm']:.6g}   (b = g(θ, β) − g_on(θ), exact)",
        f"‖θ − β‖ = {r['stale_drift']:.6g}",
        f"Lemma 1 bound C_b ‖θ − β‖ = {r['bound']:.6g}   (analytic §8: {a['bound']:.6g})",
        f"  G = {r['G']:.6g}, L_D = {r['L_D']:.6g}, L_β = {r['L_beta']:.6g}, C_b = {r['C_b']:.6g}",
        f"  at (θ, β): 2 G TV + gap = {r['pointwise_bound']:.6g} (TV = {r['tv']:.6g}, gap = {r['behaviour_gap']:.6g})",
        f"  other split: 2 G_on TV + gap_β = {r['pointwise_bound_alt']:.6g} (G_on = {r['G_on']:.6g}, "
        f"gap_β = {r['behaviour_gap_beta']:.6g})",
        f"g(θ, β) = {[round(v, 6) for v in r['g_stale']]}",
        f"g_on(θ) = {[round(v, 6) for v in r['g_on']]}",
        f"region: {r['region']} ({r['n_pairs']} pairs)",
    ])


def constants_table(r):
    """:func:`constants_report` as the text ``repro constants`` prints."""
    rows = [f"{'':8}{'numeric':>12}{'analytic':>12}{'ratio':>8}"]
    for name in ("G", "U", "L_D", "L_beta", "C_b"):
        bound = r.get(f"{name}_analytic")
        tail = f"{bound:12.5g}{bound / r[name]:8.1f}" if bound is not None and r[name] > 0 else f"{'–':>12}{'':8}"
        rows.append(f"{name:8}{r[name]:12.5g}{tail}")
    run = r["U_run"]
    return "\n".join(rows + [
        f"region: {r['region']} ({r['n_pairs']} pairs, max ‖θ − β‖_∞ = {r['max_pair_distance_inf']:.4g})",
        f"U: max ‖θ_t+1 − θ_t‖/η of async SGD, η = {run['eta']:.4g}, τ = {run['tau']}, {run['steps']} steps, "
        f"{run['groups_per_step']} groups per step; analytic U = G (plain ascent)",
    ])
