"""synthetic.exact: the O(P·Y·n) population path against the Y^n enumeration oracles and Monte Carlo."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic.bandit import DiscreteTask, group_gradients, loglinear_logp, softmax_logp
from synthetic.constants import exact_group_tv, instance_gradient_bound, single_sample_tv
from synthetic.exact import (enumerated_gradient, enumerated_surrogate, group_tv, population_surrogate,
                             staleness_bias, surrogate_gradient)
from theory.grpo import advantages, ratio, surrogate


@st.composite
def instances(draw, max_answers=5, max_n=4):
    """A random discrete task and a pair (θ, β): tabular single prompt, or log-linear with 2–3 prompts."""
    n_answers = draw(st.integers(2, max_answers))
    n = draw(st.integers(2, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    eps = draw(st.floats(0.05, 0.4))
    kappa = draw(st.sampled_from([0.0, 0.1, 0.5]))
    dual_clip = draw(st.sampled_from([None, 2.0]))
    scale = draw(st.sampled_from([0.05, 0.3, 1.0]))
    if draw(st.booleans()):
        n_prompts, dim = 1, n_answers
        logp_fn = softmax_logp
    else:
        n_prompts, dim = draw(st.integers(2, 3)), draw(st.integers(1, 3))
        features = jnp.asarray(rng.normal(size=(n_prompts, n_answers, dim)))
        logp_fn = jax.tree_util.Partial(loglinear_logp, features=features)
    reward = jnp.asarray((rng.random((n_prompts, n_answers)) < 0.4).astype(float)).at[:, 0].set(1.0)
    weights = jnp.asarray(rng.dirichlet(np.ones(n_prompts)))
    theta = jnp.asarray(rng.normal(size=dim))
    beta = theta + scale * jnp.asarray(rng.normal(size=dim))
    task = DiscreteTask(logp_fn, reward, weights, n, eps, kappa, jnp.asarray(rng.normal(size=dim)), dual_clip)
    return task, theta, beta


STATIC = ("logp_fn", "n", "dual_clip")
fast_gradient = jax.jit(surrogate_gradient, static_argnames=STATIC)
oracle_gradient = jax.jit(enumerated_gradient, static_argnames=STATIC)
bias_of = jax.jit(staleness_bias, static_argnames=STATIC)
G_of = jax.jit(instance_gradient_bound, static_argnames=(*STATIC, "max_instances"))


def _args(task):
    return task.reward, task.prompt_weights, task.n, task.eps, task.kappa, task.theta_ref, task.dual_clip


@given(instances())
@settings(max_examples=6, derandomize=True, deadline=None)
def test_fast_path_equals_the_enumeration_oracle(instance):
    task, theta, beta = instance
    fast = fast_gradient(task.logp_fn, theta, beta, *_args(task))
    oracle = oracle_gradient(task.logp_fn, theta, beta, *_args(task))
    np.testing.assert_allclose(fast, oracle, rtol=1e-9, atol=1e-9)
    lp_t, lp_b, lp_r = task.logp_fn(theta), task.logp_fn(beta), task.logp_fn(task.theta_ref)
    value = population_surrogate(lp_t, lp_b, lp_b, task.reward, task.prompt_weights, task.n, task.eps, task.kappa,
                                 lp_r, task.dual_clip)
    assert abs(float(value) - enumerated_surrogate(lp_t, lp_b, lp_b, task.reward, task.prompt_weights, task.n, task.eps,
                                                   task.kappa, lp_r, task.dual_clip)) < 1e-9
    on_theta = fast_gradient(task.logp_fn, theta, beta, *_args(task), sampler=theta)
    np.testing.assert_allclose(on_theta, oracle_gradient(task.logp_fn, theta, beta, *_args(task), sampler=theta),
                               rtol=1e-9, atol=1e-9)


@given(instances())
@settings(max_examples=5, derandomize=True, deadline=None)
def test_no_bias_without_staleness(instance):
    task, theta, _ = instance
    bias, g_stale, g_on = bias_of(task.logp_fn, theta, theta, *_args(task))
    assert float(jnp.max(jnp.abs(bias))) == 0.0
    np.testing.assert_allclose(g_on, oracle_gradient(task.logp_fn, theta, theta, *_args(task)), atol=1e-9)


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=3, derandomize=True, deadline=None)
def test_exact_gradient_agrees_with_monte_carlo_within_5_sigma(instance):
    task, theta, beta = instance
    samples = np.asarray(group_gradients(task, theta, beta, jax.random.PRNGKey(0), 4000))
    mean, sem = samples.mean(axis=0), samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    exact = np.asarray(fast_gradient(task.logp_fn, theta, beta, *_args(task)))
    assert np.all(np.abs(mean - exact) <= 5 * sem + 1e-12), (mean, exact, sem)


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=10, derandomize=True, deadline=None)
def test_group_tv_matches_the_numpy_count_sum_and_the_n_times_bound(instance):
    task, theta, beta = instance
    lp_t, lp_b = task.logp_fn(theta), task.logp_fn(beta)
    exact = float(exact_group_tv(lp_t, lp_b, task.prompt_weights, task.n))
    assert abs(exact - group_tv(lp_t, lp_b, task.prompt_weights, task.n)) < 1e-12
    single = float(single_sample_tv(lp_t, lp_b, task.prompt_weights))
    assert single - 1e-12 <= exact <= min(1.0, task.n * single) + 1e-12


def _brute_force_G(task, theta, beta):
    """max over every prompt and ordered group of ‖∇ℓ(θ; β, z)‖, from theory.grpo on the group itself."""
    lp_b, lp_r = task.logp_fn(beta), task.logp_fn(task.theta_ref)
    n_prompts, n_answers = task.reward.shape
    groups = jnp.asarray(list(itertools.product(range(n_answers), repeat=task.n)))

    def ell(params, x, ys):
        lp = task.logp_fn(params)
        kl = jnp.sum(jnp.exp(lp[x]) * (lp[x] - lp_r[x]))
        return surrogate(ratio(lp[x][ys], lp_b[x][ys]), advantages(task.reward[x][ys]), task.eps, kl, task.kappa,
                         task.dual_clip)

    per_group = jax.jit(jax.vmap(jax.grad(ell), in_axes=(None, None, 0)), static_argnums=1)
    grads = [per_group(theta, x, groups) for x in range(n_prompts)]
    return float(max(jnp.max(jnp.linalg.norm(g, axis=-1)) for g in grads))


@given(instances(max_answers=4, max_n=4))
@settings(max_examples=6, derandomize=True, deadline=None)
def test_instance_gradient_bound_is_the_max_over_groups(instance):
    task, theta, beta = instance
    exact = float(G_of(task.logp_fn, theta, beta, *_args(task)))
    assert abs(exact - _brute_force_G(task, theta, beta)) < 1e-9
    upper = float(G_of(task.logp_fn, theta, beta, *_args(task), max_instances=0))
    assert upper >= exact - 1e-12
