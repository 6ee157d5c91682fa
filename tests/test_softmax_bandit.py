"""theory.softmax_bandit: the sympy checks pass, and the closed forms agree with numbers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from theory import softmax_bandit


def test_every_symbolic_check_passes():
    results = softmax_bandit.derivations()
    assert len(results) >= 10
    assert all(checked is not False for _, checked in results)
    assert sum(checked is True for _, checked in results) >= 8


def test_closed_forms_hold_numerically_on_random_policies():
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = rng.integers(2, 8)
        theta, ref, v = rng.normal(size=k), rng.normal(size=k), rng.normal(size=k)
        v /= np.linalg.norm(v)
        pi = np.exp(theta - np.logaddexp.reduce(theta))
        assert np.all(np.linalg.norm(np.eye(k) - pi, axis=1) <= np.sqrt(2))
        assert 0.5 * np.sum(pi * np.abs(v - pi @ v)) <= 1 / (2 * np.sqrt(2)) + 1e-12
        kl = lambda t: jnp.sum(jax.nn.softmax(t) * (jax.nn.log_softmax(t) - jax.nn.log_softmax(jnp.asarray(ref))))
        u = theta - ref
        closed = pi * (u - pi @ u)
        np.testing.assert_allclose(jax.grad(kl)(jnp.asarray(theta)), closed, atol=1e-12)
        assert np.linalg.norm(closed) <= softmax_bandit.analytic_kl_gradient(np.sqrt(2), np.ptp(u)) + 1e-12
        beta = theta + rng.uniform(-0.3, 0.3, k)
        log_rho = (theta - np.logaddexp.reduce(theta)) - (beta - np.logaddexp.reduce(beta))
        assert np.max(np.abs(log_rho)) <= 2 * np.max(np.abs(theta - beta)) + 1e-12


def test_analytic_constants_reduce_and_grow_as_stated():
    assert softmax_bandit.analytic_L_D(4) == pytest.approx(np.sqrt(4) / (2 * np.sqrt(2)))
    assert softmax_bandit.analytic_G(4, 0.2, 0.0, 0.0) == pytest.approx(np.sqrt(2))  # ρ = 1: (D/2)(1 + 1)
    assert softmax_bandit.analytic_L_beta(0.2, 1e-9) == pytest.approx(2.0, rel=1e-6)  # D² · (e^m − 1)/m → 2
    assert softmax_bandit.analytic_G(4, 0.2, 0.0, 1.0, dual_clip=1.5) < softmax_bandit.analytic_G(4, 0.2, 0.0, 1.0)
    assert softmax_bandit.analytic_L_beta(0.2, 0.5) > softmax_bandit.analytic_L_beta(0.2, 0.1)
