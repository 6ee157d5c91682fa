"""Exact g(θ, β): jitted fast path vs the Y^n enumeration oracle vs a plain numpy loop, timed side by side.

Cases: single-prompt K = 8 bandit with n = 8 (8^8 = 16.7M ordered groups), and a
log-linear bandit with P = 64 prompts. The oracle and the numpy loop are timed on
smaller n where the full K^n sum fits, and extrapolated by the K^n (or P·K^n)
group count, which is how their cost scales; the printed lines say which. The
oracle also sums over the 2^n reward vectors of each group (noisy rewards), so it
is extrapolated by (2K)^n.
"""

import dataclasses
import itertools
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from synthetic.bandit import TabularPolicy, contextual_task  # noqa: E402
from synthetic.exact import DiscreteTask, enumerated_gradient, surrogate_gradient  # noqa: E402
from theory.grpo import advantages, ratio  # noqa: E402


def timed(fn, repeats=3):
    fn()  # compile / warm up
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(fn())
    return (time.perf_counter() - start) / repeats


def numpy_loop_gradient(logits_theta, logits_beta, reward, n, eps):
    """Plain numpy, tabular bandit: Σ over ordered groups of P_β(group) · ∇ℓ, one group at a time."""
    pi_t = np.exp(logits_theta - np.logaddexp.reduce(logits_theta))
    pi_b = np.exp(logits_beta - np.logaddexp.reduce(logits_beta))
    k, total = len(pi_t), np.zeros(len(pi_t))
    for group in itertools.product(range(k), repeat=n):
        ys = np.array(group)
        adv = advantages(reward[ys])
        rho = ratio(np.log(pi_t[ys]), np.log(pi_b[ys]))
        unclipped = np.where(adv > 0, rho < 1 + eps, rho > 1 - eps)
        coef = adv * rho * unclipped / n
        grad = np.zeros(k)
        for c, y in zip(coef, ys):
            grad += c * (np.eye(k)[y] - pi_t)
        total += np.prod(pi_b[ys]) * grad
    return total


def main():
    k, n, eps = 8, 8, 0.2
    rng = np.random.default_rng(0)
    theta, beta = jnp.asarray(rng.normal(size=k)), jnp.asarray(rng.normal(size=k))
    reward = jnp.zeros((1, k)).at[0, 0].set(1.0)
    task = DiscreteTask(TabularPolicy(), reward, jnp.ones(1), None, n, eps)
    fast = jax.jit(lambda t, b: surrogate_gradient(task, t, b))
    t_fast = timed(lambda: fast(theta, beta))
    n_small = 5
    small = DiscreteTask(TabularPolicy(), reward, jnp.ones(1), None, n_small, eps)
    oracle = jax.jit(lambda t, b: enumerated_gradient(small, t, b))
    t_oracle = timed(lambda: oracle(theta, beta), repeats=1) * (2 * k) ** (n - n_small)
    start = time.perf_counter()
    numpy_loop_gradient(np.asarray(theta), np.asarray(beta), np.asarray(reward[0]), 4, eps)
    t_numpy = (time.perf_counter() - start) * k ** (n - 4)
    print(f"K = {k}, n = {n} (single prompt):")
    print(f"  fast path (jit)            {t_fast * 1e3:10.3f} ms  (measured)")
    print(f"  enumeration oracle (jit)   {t_oracle * 1e3:10.1f} ms  (measured at n = {n_small}, × (2K)^{n - n_small})"
          f"   ratio {t_oracle / t_fast:,.0f}×")
    print(f"  numpy loop                 {t_numpy * 1e3:10.1f} ms  (measured at n = 4, × K^{n - 4})"
          f"   ratio {t_numpy / t_fast:,.0f}×")

    task, _ = contextual_task(64, k, 16, n, eps, seed=0)
    theta_c, beta_c = jnp.asarray(rng.normal(size=16)) * 0.3, jnp.asarray(rng.normal(size=16)) * 0.3
    fast_c = jax.jit(lambda t, b: surrogate_gradient(task, t, b))
    t_fast_c = timed(lambda: fast_c(theta_c, beta_c))
    n_small_c = 3
    small_c = dataclasses.replace(task, n=n_small_c)
    oracle_c = jax.jit(lambda t, b: enumerated_gradient(small_c, t, b))
    t_oracle_c = timed(lambda: oracle_c(theta_c, beta_c), repeats=1) * (2 * k) ** (n - n_small_c)
    print(f"P = 64 prompts, K = {k}, d = 16, n = {n} (log-linear):")
    print(f"  fast path (jit)            {t_fast_c * 1e3:10.3f} ms  (measured)")
    print(f"  enumeration oracle (jit)   {t_oracle_c * 1e3:10.1f} ms  "
          f"(measured at n = {n_small_c}, × (2K)^{n - n_small_c})   ratio {t_oracle_c / t_fast_c:,.0f}×")


if __name__ == "__main__":
    main()
