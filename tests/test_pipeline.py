"""theory.pipeline and the tree statistics of theory.metrics: one definition on numpy, JAX and torch."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from theory import metrics, pipeline
from theory.metrics import PROJECTIONS, project, step_statistics


@given(t=st.integers(0, 10_000), tau=st.integers(1, 64))
@settings(max_examples=50, derandomize=True, deadline=None)
def test_lag_and_behaviour_step_follow_the_reuse_pipeline(t, tau):
    lag = pipeline.lag(t, tau)
    assert 0 <= lag < tau and pipeline.behaviour_step(t, tau) == t - lag  # (11)–(12)
    assert pipeline.behaviour_step(t, tau) % tau == 0
    assert pipeline.is_sync(t, tau) == (lag == 0)
    assert pipeline.slice_of(t, tau) == lag
    groups = np.arange(4 * tau)
    assert np.sum(pipeline.in_slice(groups, t, tau)) == 4  # τ disjoint slices of equal size


@pytest.mark.parametrize("asarray", [np.asarray, jnp.asarray, torch.as_tensor])
def test_pipeline_functions_take_every_array_library(asarray):
    t = asarray(np.arange(12))
    np.testing.assert_array_equal(np.asarray(pipeline.lag(t, 4)), np.arange(12) % 4)
    np.testing.assert_array_equal(np.asarray(pipeline.behaviour_step(t, 4)), np.arange(12) // 4 * 4)
    ess = asarray(np.array([0.2, 0.5, 1.0]))
    np.testing.assert_allclose(np.asarray(pipeline.ess_scaled_eta(2.0, ess, 0.5)), [0.8, 2.0, 2.0], rtol=1e-12)
    logp = np.log(np.random.default_rng(0).dirichlet(np.ones(5), size=3))
    ref = np.log(np.random.default_rng(1).dirichlet(np.ones(5), size=3))
    expected = np.sum(np.exp(logp) * (logp - ref), axis=-1)
    np.testing.assert_allclose(np.asarray(pipeline.per_prompt_kl(asarray(logp), asarray(ref))), expected, rtol=1e-12)


def test_ess_scaled_eta_without_a_base_is_eta():
    assert pipeline.ess_scaled_eta(3.0, 0.1, None) == 3.0
    assert pipeline.ess_scaled_eta(3.0, 0.1, 0.5) == pytest.approx(0.6)


@pytest.mark.parametrize("asarray", [np.asarray, jnp.asarray, torch.as_tensor])
def test_step_statistics_are_the_norms_and_cosines(asarray):
    rng = np.random.default_rng(2)
    theta, theta0, beta, u, u_prev, g, g_prev = (rng.normal(size=6) for _ in range(7))
    stats_ = step_statistics(*(asarray(v) for v in (theta, theta0, beta, u, u_prev, g, g_prev)))
    cos = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    expected = {"drift": np.linalg.norm(theta - theta0), "stale_drift": np.linalg.norm(theta - beta),
                "update_norm": np.linalg.norm(u), "grad_cos": cos(u, u_prev), "raw_grad_cos": cos(g, g_prev)}
    assert set(stats_) == set(expected)
    for name, value in expected.items():
        assert float(stats_[name]) == pytest.approx(value, rel=1e-12), name
    first = step_statistics(asarray(theta), asarray(theta0), asarray(beta), asarray(u))
    assert set(first) == {"drift", "stale_drift", "update_norm"}


def test_projection_is_the_same_matrix_on_numpy_jax_and_torch():
    x = np.random.default_rng(3).normal(size=(3, 500))
    expected = project(x)
    assert expected.shape == (3, PROJECTIONS)
    np.testing.assert_allclose(np.asarray(project(jnp.asarray(x))), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(jax.jit(project)(jnp.asarray(x))), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(project(torch.as_tensor(x)).numpy(), expected, rtol=1e-12, atol=1e-12)
    assert project(torch.as_tensor(x, dtype=torch.float32)).dtype == torch.float32


@pytest.mark.parametrize("asarray", [np.asarray, jnp.asarray, torch.as_tensor])
@pytest.mark.parametrize("codes_cache", [1 << 28, 0])
def test_scatter_add_projection_equals_the_dense_matrix(monkeypatch, asarray, codes_cache):
    x = np.random.default_rng(4).normal(size=(2, 1000))
    dense = project(x)
    monkeypatch.setattr(metrics, "PROJECTION_CACHE", 0)  # the paths a 1e9-parameter vector takes
    monkeypatch.setattr(metrics, "PROJECTION_CODES_CACHE", codes_cache)
    sketched = project(asarray(x), chunk=77)
    np.testing.assert_allclose(np.asarray(sketched), dense, rtol=1e-12, atol=1e-12)


def test_projection_preserves_squared_norms_in_expectation():
    ratios = []
    for seed in range(300):
        x = np.random.default_rng(seed).normal(size=200)
        ratios.append(np.sum(project(x, seed=seed) ** 2) / np.sum(x**2))
    # Var(‖Px‖²/‖x‖²) = (2/k)(1 − Σx⁴/‖x‖⁴) ≤ 2/k for the sign sketch; 4 standard errors over 300 seeds
    assert abs(np.mean(ratios) - 1.0) < 4 * np.sqrt(2 / PROJECTIONS / 300)


def test_projection_is_one_balanced_sign_per_column():
    d, k = 20_000, 8
    matrix = metrics._cached_matrix(d, k, metrics.PROJECTION_SEED)
    assert np.all(np.sum(np.abs(matrix), axis=0) == 1)  # one nonzero per column
    assert set(np.unique(matrix)) == {-1.0, 0.0, 1.0}
    signs, buckets = matrix.sum(axis=0), np.argmax(np.abs(matrix), axis=0)
    assert abs(signs.mean()) < 4 / np.sqrt(d)
    counts = np.bincount(buckets, minlength=k)
    assert stats.chisquare(counts).pvalue > 1e-3
    # signs independent of buckets: per-bucket sign means all near 0
    assert max(abs(signs[buckets == i].mean()) for i in range(k)) < 4 / np.sqrt(d / k)
