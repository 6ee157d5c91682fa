"""theory.grpo: advantages (1), ratio (2), clipped term and surrogate (3), k3 KL, clip_frac, ess."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from synthetic.exact import clipped
from theory.grpo import (ADVANTAGE_DELTA, advantages, clip_fraction, clipped_slopes, clipped_term,
                         effective_sample_size, k3_kl, ratio, surrogate)


@given(n=st.integers(2, 12), data=st.data())
@settings(max_examples=30, derandomize=True, deadline=None)
def test_binary_advantages_have_the_closed_form(n, data):
    successes = data.draw(st.integers(0, n))
    r = np.array([1.0] * successes + [0.0] * (n - successes))
    adv = advantages(r)
    if successes in (0, n):
        assert np.all(adv == 0.0)  # no reward spread, no signal
        return
    p = successes / n
    std = np.sqrt(p * (1 - p))
    np.testing.assert_allclose(adv[:successes], (1 - p) / (std + ADVANTAGE_DELTA), rtol=1e-12)
    np.testing.assert_allclose(adv[successes:], -p / (std + ADVANTAGE_DELTA), rtol=1e-12)
    assert abs(adv.sum()) < 1e-9
    assert np.max(np.abs(adv)) <= np.sqrt(n - 1)  # docs/theory.md §8
    assert np.mean(np.abs(adv)) <= 1.0


def test_advantages_are_the_same_on_numpy_jax_and_torch():
    r = np.random.default_rng(0).random((5, 7))
    expected = advantages(r)
    np.testing.assert_allclose(np.asarray(advantages(jnp.asarray(r))), expected, rtol=1e-12)
    np.testing.assert_allclose(advantages(torch.tensor(r)).numpy(), expected, rtol=1e-12)


def test_ratio_is_the_probability_quotient():
    logp_theta, logp_beta = np.log([0.2, 0.5]), np.log([0.4, 0.25])
    np.testing.assert_allclose(ratio(logp_theta, logp_beta), [0.5, 2.0], rtol=1e-12)


@pytest.mark.parametrize("adv", [1.3, -0.7])
def test_clipped_term_gradient_vanishes_only_on_the_clipped_side(adv):
    eps = 0.2
    grad = jax.grad(lambda rho: clipped_term(rho, jnp.asarray(adv), eps))
    for rho in (0.5, 0.9, 1.0, 1.1, 1.5):
        clipped = rho > 1 + eps if adv > 0 else rho < 1 - eps
        assert float(grad(rho)) == pytest.approx(0.0 if clipped else adv)
        assert float(clipped_term(np.asarray(rho), np.asarray(adv), eps)) == pytest.approx(
            min(rho * adv, float(np.clip(rho, 1 - eps, 1 + eps)) * adv))


@given(rho=st.floats(0.01, 5.0), adv=st.floats(-3.0, 3.0), dual_clip=st.sampled_from([None, 1.5, 3.0]))
@settings(max_examples=200, derandomize=True, deadline=None)
def test_clipped_slopes_are_the_derivatives_and_the_jax_term_uses_them(rho, adv, dual_clip):
    eps = 0.2
    # away from the kinks (ρ = 1 ± ε, ρ = c, A = 0) the derivative is unique: compare with autodiff of the term
    if min(abs(rho - 1 + eps), abs(rho - 1 - eps), abs(adv), abs(rho - (dual_clip or -1))) < 1e-6:
        return
    rho_, adv_ = jnp.float64(rho), jnp.float64(adv)
    expected = jax.grad(lambda r, a: clipped_term(r, a, eps, dual_clip), argnums=(0, 1))(rho_, adv_)
    slopes = clipped_slopes(rho_, adv_, eps, dual_clip)
    np.testing.assert_allclose(slopes, expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(jax.grad(clipped, argnums=(0, 1))(rho_, adv_, eps, dual_clip), expected, rtol=1e-12,
                               atol=1e-15)
    assert float(clipped(rho_, adv_, eps, dual_clip)) == float(clipped_term(rho_, adv_, eps, dual_clip))


def test_clipped_slopes_inside_the_clip_are_the_unclipped_ones():
    rho, adv = jnp.array([0.9, 1.0, 1.1]), jnp.array([-1.0, 2.0, 0.5])
    d_rho, d_adv = clipped_slopes(rho, adv, 0.2)
    np.testing.assert_array_equal(d_rho, adv)
    np.testing.assert_array_equal(d_adv, rho)
    np.testing.assert_array_equal(jax.grad(lambda r: jnp.sum(clipped_term(r, adv, 0.2)))(rho), d_rho)


def test_dual_clip_floors_negative_advantage_terms():
    adv, eps, c = jnp.asarray(-1.0), 0.2, 3.0
    assert float(clipped_term(jnp.asarray(5.0), adv, eps, dual_clip=c)) == pytest.approx(c * adv)
    assert float(jax.grad(lambda rho: clipped_term(rho, adv, eps, dual_clip=c))(5.0)) == 0.0
    assert float(clipped_term(jnp.asarray(2.0), adv, eps, dual_clip=c)) == pytest.approx(2.0 * adv)  # below c
    assert float(clipped_term(jnp.asarray(5.0), -adv, eps, dual_clip=c)) == pytest.approx(1.0 + eps)  # A > 0


def test_surrogate_is_the_group_mean_minus_kl():
    rho, adv = np.array([0.5, 1.1, 1.6]), np.array([1.0, -2.0, 1.0])
    expected = np.mean([0.5 * 1.0, -2.0 * 1.1, 1.2 * 1.0]) - 0.3 * 0.7
    assert surrogate(rho, adv, 0.2, kl=0.7, kappa=0.3) == pytest.approx(expected)


def test_k3_is_nonnegative_and_unbiased_for_the_kl():
    rng = np.random.default_rng(1)
    p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
    per_token = k3_kl(np.log(p), np.log(q))
    assert np.all(per_token >= 0)
    assert np.sum(p * per_token) == pytest.approx(np.sum(p * np.log(p / q)), rel=1e-12)  # E_{π_θ}[k3] = KL


def test_clip_fraction_and_ess():
    rho = np.array([0.7, 0.9, 1.0, 1.3])
    assert clip_fraction(rho, 0.2) == pytest.approx(0.5)
    assert effective_sample_size(np.ones(5)) == pytest.approx(1.0)
    assert effective_sample_size(np.array([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.25)
