"""The async-GRPO simulator: pipeline bookkeeping, exact metrics against sampling, Lemma 1 along runs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic.simulate import RunConfig, make_run, sample_batch
from synthetic.tasks import make_task, success


@pytest.fixture(scope="module")
def bandit_runs():
    task = make_task("bandit")
    run = jax.jit(make_run(task, RunConfig(steps=40, batch=8, exact_every=5, lemma1=True)))
    return {tau: run(2.0, tau, 3) for tau in (1, 3)}


def test_staleness_follows_the_reuse_pipeline(bandit_runs):
    for tau, metrics in bandit_runs.items():
        np.testing.assert_array_equal(metrics["staleness"], np.arange(40) % tau)
    on_policy = bandit_runs[1]
    assert np.all(np.asarray(on_policy["stale_drift"]) == 0.0)
    assert np.nanmax(np.asarray(on_policy["bias_norm"])) < 1e-12, "β = θ must give zero bias"
    stale = bandit_runs[3]
    at_sync = np.arange(40) % 3 == 0
    assert np.all(np.asarray(stale["stale_drift"])[at_sync] == 0.0)
    assert np.any(np.asarray(stale["stale_drift"])[~at_sync] > 0.0)  # zero where a batch had no signal


def test_lemma1_bound_holds_at_every_recorded_step(bandit_runs):
    for metrics in bandit_runs.values():
        bias, bound = np.asarray(metrics["bias_norm"]), np.asarray(metrics["bias_bound"])
        recorded = ~np.isnan(bias)
        assert recorded.sum() == 8
        assert np.all(bias[recorded] <= bound[recorded] + 1e-12)


def test_exact_metrics_are_taken_at_each_blocks_most_stale_step(bandit_runs):
    metrics = bandit_runs[3]
    lag = np.asarray(metrics["staleness"])
    for name in ("bias_norm", "val_reward", "kl_ref"):
        recorded = np.flatnonzero(~np.isnan(np.asarray(metrics[name])))
        assert recorded.tolist() == [5 * b + int(np.argmax(lag[5 * b: 5 * b + 5])) for b in range(8)], name
        assert np.all(lag[recorded] == 2), "five consecutive steps hold every lag of τ = 3"
    assert np.any(np.asarray(metrics["stale_drift"])[recorded] > 0)  # zero only after a batch without signal


def test_lemma1_bound_holds_on_the_autoregressive_task():
    task = make_task("autoregressive")
    metrics = jax.jit(make_run(task, RunConfig(steps=20, exact_every=5, lemma1=True)))(8.0, 4, 0)
    bias, bound = np.asarray(metrics["bias_norm"]), np.asarray(metrics["bias_bound"])
    recorded = ~np.isnan(bias)
    assert np.any(bias[recorded] > 0)
    assert np.all(bias[recorded] <= bound[recorded] + 1e-12)


def test_batch_reward_agrees_with_the_exact_success():
    task = make_task("autoregressive")
    exact = float(success(task, task.theta_0, task.problem.prompt_weights))
    batches = jax.vmap(lambda key: sample_batch(task, task.theta_0, key, 64, 0))(
        jax.random.split(jax.random.PRNGKey(0), 32))
    rewards = np.asarray(task.problem.reward[batches.prompts[..., None], batches.answers]).ravel()
    sigma = np.sqrt(exact * (1 - exact) / rewards.size)
    assert abs(rewards.mean() - exact) < 5 * sigma


def test_same_seed_same_run_and_another_seed_differs():
    run = jax.jit(make_run(make_task("contextual"), RunConfig(steps=20, exact_every=10)))
    first, again, other = run(1.0, 2, 7), run(1.0, 2, 7), run(1.0, 2, 8)
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["reward"], other["reward"])


def test_slices_use_one_of_tau_disjoint_parts():
    task = make_task("bandit")
    whole = jax.jit(make_run(task, RunConfig(steps=8, batch=8, exact_every=4)))(1.0, 4, 0)
    sliced = jax.jit(make_run(task, RunConfig(steps=8, batch=8, exact_every=4, reuse="slices")))(1.0, 4, 0)
    assert np.asarray(whole["reward"])[0] == np.asarray(whole["reward"])[1]
    assert not np.allclose(np.asarray(sliced["update_norm"]), np.asarray(whole["update_norm"]))


@pytest.mark.parametrize("bad", [dict(optimizer="rmsprop"), dict(reuse="half"), dict(steps=0),
                                 dict(steps=15, exact_every=10), dict(clip_norm=-1.0)])
def test_bad_run_config_is_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        RunConfig(**bad)


def test_ess_scaled_learning_rate_follows_the_batch_ess():
    task = make_task("contextual")
    fixed = jax.jit(make_run(task, RunConfig(steps=30, exact_every=10)))
    scaled = jax.jit(make_run(task, RunConfig(steps=30, exact_every=10, ess_base=1.0)))
    on_policy = scaled(4.0, 1, 2)
    np.testing.assert_allclose(on_policy["eta_scale"], 1.0, atol=1e-12)  # lag 0: every ratio is 1, ess = 1
    np.testing.assert_allclose(on_policy["reward"], fixed(4.0, 1, 2)["reward"], atol=1e-9)
    stale = scaled(4.0, 6, 2)
    expected = np.minimum(1.0, np.asarray(stale["ess"]))
    np.testing.assert_allclose(stale["eta_scale"], expected, rtol=1e-12)
    assert np.asarray(stale["eta_scale"]).min() < 1.0, "stale batches must lose ESS and so learning rate"
    np.testing.assert_array_equal(fixed(4.0, 6, 2)["eta_scale"], 1.0)


def test_a_diverged_run_is_collapsed_at_its_first_non_finite_step():
    from theory.collapse import collapse_step

    # an infinite step makes θ non-finite (inf − inf = NaN in the softmax): the reward must say so
    metrics = jax.jit(make_run(make_task("contextual"), RunConfig(steps=20, exact_every=5)))(np.inf, 2, 0)
    drift, reward = np.asarray(metrics["drift"]), np.asarray(metrics["reward"])
    first = int(np.argmax(~np.isfinite(drift)))
    assert 0 < first < 20 and np.all(np.isnan(reward[first:])) and np.all(np.isfinite(reward[:first]))
    assert collapse_step(reward) == first
