"""synthetic.exact: the O(P·Y·n) population path against the Y^n enumeration oracles and Monte Carlo."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic.bandit import LogLinearPolicy, TabularPolicy
from synthetic.constants import _kl_gradients, exact_group_tv, instance_gradient_bound, score_norms, single_sample_tv
from synthetic.exact import (DiscreteTask, advantage_table, enumerated_gradient, enumerated_surrogate,
                             gradient_mappings, group_tv, population_surrogate, staleness_bias, surrogate_gradient)
from synthetic.simulate import Batch, SimTask, batch_objective, sample_batch
from theory.grpo import advantages, clipped_term, ratio, surrogate


@st.composite
def instances(draw, max_answers=5, max_n=4):
    """A random discrete task and a pair (θ, β): tabular single prompt, or log-linear with 2–3 prompts; binary or
    noisy rewards (reward probabilities in (0, 1))."""
    n_answers = draw(st.integers(2, max_answers))
    n = draw(st.integers(2, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    eps = draw(st.floats(0.05, 0.4))
    kappa = draw(st.sampled_from([0.0, 0.1, 0.5]))
    dual_clip = draw(st.sampled_from([None, 2.0]))
    scale = draw(st.sampled_from([0.05, 0.3, 1.0]))
    if draw(st.booleans()):
        n_prompts, dim = 1, n_answers
        policy = TabularPolicy()
    else:
        n_prompts, dim = draw(st.integers(2, 3)), draw(st.integers(1, 3))
        policy = LogLinearPolicy(jnp.asarray(rng.normal(size=(n_prompts, n_answers, dim))))
    reward = (rng.random((n_prompts, n_answers)) < 0.4).astype(float)
    if draw(st.booleans()):
        reward = np.clip(reward + rng.uniform(-0.3, 0.3, reward.shape), 0.0, 1.0)  # noisy rewards
    reward = jnp.asarray(reward).at[:, 0].set(1.0)
    weights = jnp.asarray(rng.dirichlet(np.ones(n_prompts)))
    theta = jnp.asarray(rng.normal(size=dim))
    beta = theta + scale * jnp.asarray(rng.normal(size=dim))
    task = DiscreteTask(policy, reward, weights, jnp.asarray(rng.normal(size=dim)), n, eps, kappa, dual_clip)
    return task, theta, beta


fast_gradient = jax.jit(surrogate_gradient)
oracle_gradient = jax.jit(enumerated_gradient)
bias_of = jax.jit(staleness_bias)
G_of = jax.jit(instance_gradient_bound, static_argnames="max_instances")


@given(instances())
@settings(max_examples=6, derandomize=True, deadline=None)
def test_fast_path_equals_the_enumeration_oracle(instance):
    task, theta, beta = instance
    fast = fast_gradient(task, theta, beta)
    oracle = oracle_gradient(task, theta, beta)
    np.testing.assert_allclose(fast, oracle, rtol=1e-9, atol=1e-9)
    lp_t, lp_b, lp_r = task.logp(theta), task.logp(beta), task.logp(task.theta_ref)
    value = population_surrogate(task, lp_t, lp_b, lp_b, lp_r)
    assert abs(float(value) - enumerated_surrogate(task, lp_t, lp_b, lp_b, lp_r)) < 1e-9
    on_theta = fast_gradient(task, theta, beta, sampler=theta)
    np.testing.assert_allclose(on_theta, oracle_gradient(task, theta, beta, sampler=theta), rtol=1e-9, atol=1e-9)
    # the four mappings of both bias splits, from one backward pass, are the same gradients
    mappings = jax.jit(gradient_mappings)(task, theta, beta)
    for row, expected in zip(mappings, (fast, fast_gradient(task, theta, theta), on_theta,
                                        oracle_gradient(task, theta, theta, sampler=beta))):
        np.testing.assert_allclose(row, expected, rtol=1e-9, atol=1e-9)


@given(instances())
@settings(max_examples=5, derandomize=True, deadline=None)
def test_no_bias_without_staleness(instance):
    task, theta, _ = instance
    bias, g_stale, g_on = bias_of(task, theta, theta)
    assert float(jnp.max(jnp.abs(bias))) == 0.0
    np.testing.assert_allclose(g_on, oracle_gradient(task, theta, theta), atol=1e-9)


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=3, derandomize=True, deadline=None)
def test_exact_gradient_agrees_with_the_engines_sampled_gradient_within_5_sigma(instance):
    task, theta, beta = instance
    samples = np.asarray(_group_gradients(SimTask.from_problem(task, theta), theta, beta, jax.random.PRNGKey(0)))
    mean, sem = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    exact = np.asarray(fast_gradient(task, theta, beta))
    assert np.all(np.abs(mean - exact) <= 5 * sem + 1e-12), (mean, exact, sem)


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=10, derandomize=True, deadline=None)
def test_group_tv_matches_the_numpy_count_sum_and_the_n_times_bound(instance):
    task, theta, beta = instance
    lp_t, lp_b = task.logp(theta), task.logp(beta)
    exact = float(exact_group_tv(lp_t, lp_b, task.prompt_weights, task.n))
    assert abs(exact - group_tv(lp_t, lp_b, task.prompt_weights, task.n)) < 1e-12
    single = float(single_sample_tv(lp_t, lp_b, task.prompt_weights))
    assert single - 1e-12 <= exact <= min(1.0, task.n * single) + 1e-12


@jax.jit
def _group_gradients(task, theta, beta, key, n_groups=4000):
    """Per-group surrogate gradients ∇ℓ(θ; β, z_b) of groups z_b ~ D_β, from the engine's sampler and objective."""
    batch = sample_batch(task, beta, key, n_groups, 0)

    def one(prompt, answers, rewards, logp_beta):
        group = Batch(prompt[None], answers[None], rewards[None], logp_beta[None], batch.version)
        return jax.grad(lambda params: batch_objective(params, task, group)[0])(theta)

    return jax.vmap(one)(batch.prompts, batch.answers, batch.rewards, batch.logp_beta)


def _brute_force_G(task, theta, beta):
    """max over every prompt, ordered group and possible reward vector of ‖∇ℓ(θ; β, z)‖, from theory.grpo."""
    lp_b, lp_r = task.logp(beta), task.logp(task.theta_ref)
    n_prompts, n_answers = task.reward.shape
    groups = jnp.asarray(list(itertools.product(range(n_answers), repeat=task.n)))
    outcomes = jnp.asarray(list(itertools.product((0.0, 1.0), repeat=task.n)))

    def ell(params, x, ys, r):
        lp = task.logp(params)
        kl = jnp.sum(jnp.exp(lp[x]) * (lp[x] - lp_r[x]))
        return surrogate(ratio(lp[x][ys], lp_b[x][ys]), advantages(r), task.eps, kl, task.kappa, task.dual_clip)

    per_group = jax.jit(jax.vmap(jax.vmap(jax.grad(ell), in_axes=(None, None, None, 0)), in_axes=(None, None, 0, None)),
                        static_argnums=1)
    best = 0.0
    for x in range(n_prompts):
        prob = task.reward[x][groups]  # [G, n]
        possible = jnp.all(jnp.where(outcomes[None] > 0, prob[:, None] > 0, prob[:, None] < 1), axis=-1)  # [G, R]
        norms = jnp.linalg.norm(per_group(theta, x, groups, outcomes), axis=-1)
        best = max(best, float(jnp.max(jnp.where(possible, norms, 0.0))))
    return best


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=6, derandomize=True, deadline=None)
def test_instance_gradient_bound_is_the_max_over_groups(instance):
    task, theta, beta = instance
    exact = float(G_of(task, theta, beta))
    assert abs(exact - _brute_force_G(task, theta, beta)) < 1e-9
    upper = float(G_of(task, theta, beta, max_instances=0))
    assert upper >= exact - 1e-12


def _bound_from_the_full_table(task, theta, beta):
    """The G upper bound straight from every coefficient ψ'(ρ, A(r, s))ρ over [2, P, Y, n] (no homogeneity)."""
    rho = jnp.exp(task.logp(theta) - task.logp(beta))  # [P, Y]
    adv = jnp.asarray(advantage_table(task.n))[:, None, None, :]  # [2, 1, 1, n]
    rho_b = jnp.broadcast_to(rho[None, ..., None], (2, *rho.shape, task.n))
    dpsi = jax.grad(lambda r: jnp.sum(clipped_term(r, adv, task.eps, task.dual_clip)))(rho_b)
    coef = np.asarray(dpsi * rho_b)  # ψ'(ρ, A(r, s))ρ at every advantage value, not through homogeneity
    norms = np.asarray(score_norms(task, theta))
    kl_norm = np.linalg.norm(np.asarray(_kl_gradients(task, theta)), axis=-1)  # [P]
    reward, n = np.asarray(task.reward), task.n
    possible = np.stack([reward < 1, reward > 0])
    sample = np.where(possible[..., None], np.abs(coef) * norms[None, ..., None], 0.0).max(axis=2)  # [2, P, n]
    best = 0.0
    for p in np.flatnonzero(np.asarray(task.prompt_weights) > 0):
        for S in range(n + 1):
            if (S and not possible[1, p].any()) or (S < n and not possible[0, p].any()):
                continue
            right = sample[1, p, S - 1] if S else 0.0
            wrong = sample[0, p, S] if S < n else 0.0
            best = max(best, (S * right + (n - S) * wrong) / n + kl_norm[p])
    return best


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=8, derandomize=True, deadline=None)
def test_gradient_bound_uses_the_homogeneity_of_the_clip_exactly(instance):
    task, theta, beta = instance
    bound = float(G_of(task, theta, beta, max_instances=0))
    assert bound == pytest.approx(_bound_from_the_full_table(task, theta, beta), rel=1e-12, abs=1e-14)
