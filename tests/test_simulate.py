"""The one engine loop: pipeline bookkeeping, exact mode against the recursion it replaces, per-step success and
projections, the applied-update clip, the probes and both bias bounds along runs."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic.constants import lemma1_bound_at
from synthetic.exact import exact_kl, surrogate_gradient
from synthetic.simulate import (RunConfig, in_precision, initial_carry, learner_step, probe, run, sample_batch,
                                success, truncation)
from synthetic.tasks import make_task
from theory.metrics import PROJECTIONS, project

run_jit = jax.jit(run, static_argnames="config")
BANDIT = RunConfig(steps=40, batch=8, exact_every=5, reuse="whole", trajectory=True)
CONTEXTUAL = RunConfig(steps=20, exact_every=10, reuse="whole")


@pytest.fixture(scope="module")
def bandit_runs():
    task = make_task("bandit")
    return task, {tau: run_jit(task, BANDIT, 2.0, tau, 3) for tau in (1, 3)}


@pytest.fixture(scope="module")
def graded_run():
    task = make_task("graded")
    config = RunConfig(steps=40, exact_every=10, update_clip=0.1, trajectory=True)
    return task, config, run_jit(task, config, 4.0, 4, 0)


def test_staleness_follows_the_reuse_pipeline(bandit_runs):
    _, runs = bandit_runs
    for tau, metrics in runs.items():
        np.testing.assert_array_equal(metrics["staleness"], np.arange(40) % tau)
    on_policy = runs[1]
    assert np.all(np.asarray(on_policy["stale_drift"]) == 0.0)
    assert np.nanmax(np.asarray(on_policy["bias_norm"])) < 1e-12, "β = θ must give zero bias"
    stale = runs[3]
    at_sync = np.arange(40) % 3 == 0
    assert np.all(np.asarray(stale["stale_drift"])[at_sync] == 0.0)
    assert np.any(np.asarray(stale["stale_drift"])[~at_sync] > 0.0)  # zero where a batch had no signal


def test_both_bias_bounds_hold_at_every_probe(bandit_runs, graded_run):
    runs = [*bandit_runs[1].values(), graded_run[2]]
    for metrics in runs:
        bias = np.asarray(metrics["bias_norm"])
        recorded = ~np.isnan(bias)
        for name in ("bias_bound", "bias_bound_alt"):
            assert np.all(bias[recorded] <= np.asarray(metrics[name])[recorded] + 1e-12), name
        for name in ("probe_G", "probe_G_on", "probe_tv", "probe_gap", "probe_gap_beta"):
            assert np.all(np.isfinite(np.asarray(metrics[name])[recorded])), name
        np.testing.assert_allclose(np.asarray(metrics["bias_bound"])[recorded],
                                   (2 * np.asarray(metrics["probe_G"]) * np.asarray(metrics["probe_tv"])
                                    + np.asarray(metrics["probe_gap"]))[recorded], rtol=1e-12)
    assert np.any(np.asarray(graded_run[2]["bias_norm"])[np.isfinite(graded_run[2]["bias_norm"])] > 0)


def test_probes_are_taken_at_each_blocks_most_stale_step(bandit_runs):
    metrics = bandit_runs[1][3]
    lag = np.asarray(metrics["staleness"])
    for name in ("bias_norm", "val_reward", "kl_ref", "probe_tv", "bias_bound_alt"):
        recorded = np.flatnonzero(~np.isnan(np.asarray(metrics[name])))
        assert recorded.tolist() == [5 * b + int(np.argmax(lag[5 * b: 5 * b + 5])) for b in range(8)], name
        assert np.all(lag[recorded] == 2), "five consecutive steps hold every lag of τ = 3"


def test_success_is_the_exact_expected_reward_every_step(graded_run):
    task, _, metrics = graded_run
    table = jax.vmap(lambda theta: jnp.sum(task.problem.prompt_weights * jnp.sum(
        jnp.exp(task.problem.logp(theta)) * task.problem.reward, axis=-1)))(metrics["theta"])
    np.testing.assert_allclose(metrics["success"], table, rtol=1e-10, atol=1e-12)
    assert float(metrics["success"][0]) == pytest.approx(0.3, abs=1e-9)  # the family's stated θ_0


@pytest.mark.parametrize("name", ["graded", "autoregressive"])
def test_truncation_forward_pass_equals_the_table(name):
    task = make_task(name)
    theta = task.theta_0 + 0.3 * jax.random.normal(jax.random.PRNGKey(1), task.theta_0.shape)
    table = np.exp(np.asarray(task.problem.logp(theta))) @ np.asarray(task.problem.policy.truncated, float)
    np.testing.assert_allclose(truncation(task, theta), table, rtol=1e-10)


@pytest.mark.parametrize("name", ["graded", "contextual"])
def test_train_success_visits_only_the_train_prompts_and_equals_the_full_sum(name):
    task = make_task(name)
    weights = np.asarray(task.problem.prompt_weights)
    np.testing.assert_array_equal(task.train_prompts, np.flatnonzero(weights > 0))
    assert np.all(weights[np.asarray(task.accept_prompts)[np.asarray(task.train_pairs)]] > 0)
    assert len(task.train_prompts) < len(weights), "the held-out prompts are skipped"
    theta = task.theta_0 + 0.3 * jax.random.normal(jax.random.PRNGKey(2), task.theta_0.shape)
    full = success(task, theta, task.problem.prompt_weights)
    np.testing.assert_allclose(success(task, theta, task.problem.prompt_weights, split="train"), full, rtol=1e-12)
    # a task built without them
    untagged = dataclasses.replace(task, train_prompts=None, train_pairs=None, train_pair_rows=None)
    np.testing.assert_allclose(success(untagged, theta, task.problem.prompt_weights, split="train"), full,
                               rtol=1e-12)
    np.testing.assert_allclose(truncation(task, theta, task.train_prompts),
                               np.asarray(truncation(task, theta))[np.asarray(task.train_prompts)], rtol=1e-12)


@pytest.mark.parametrize("name", ["graded", "contextual", "bandit"])
def test_the_probes_visit_only_the_prompts_they_weigh_and_equal_the_full_sums(name):
    """val_reward over the held-out prompts, and kl_ref, trunc_prob, the exact bias and both bounds' terms over the
    train problem, against the same quantities over every prompt (the previous computation), in float64."""
    task = make_task(name)
    if name != "bandit":
        np.testing.assert_array_equal(task.val_prompts, np.flatnonzero(np.asarray(task.val_weights) > 0))
        assert len(task.val_prompts) < len(task.val_weights)
    keys = jax.random.split(jax.random.PRNGKey(11), 3)
    pairs = [(task.theta_0 + scale * jax.random.normal(keys[0], task.theta_0.shape),
              task.theta_0 + scale * jax.random.normal(keys[1], task.theta_0.shape)) for scale in (0.3, 3.0)]
    problem = task.problem
    for theta, beta in pairs:
        metrics = probe(task, BANDIT, theta, beta)
        np.testing.assert_allclose(metrics["val_reward"], success(task, theta, task.val_weights), rtol=1e-12)
        np.testing.assert_allclose(metrics["kl_ref"], exact_kl(problem.logp(theta), problem.logp(task.theta_0),
                                                               problem.prompt_weights), rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(metrics["trunc_prob"], jnp.sum(problem.prompt_weights * truncation(task, theta)),
                                   rtol=1e-12, atol=1e-300)
        full = lemma1_bound_at(problem, theta, beta)
        for name_, value in (("bias_norm", full.bias_norm), ("bias_bound", full.bound),
                             ("bias_bound_alt", full.bound_alt), ("probe_G", full.G), ("probe_G_on", full.G_on),
                             ("probe_tv", full.tv), ("probe_gap", full.gap), ("probe_gap_beta", full.gap_beta)):
            np.testing.assert_allclose(metrics[name_], value, rtol=1e-10, atol=1e-15, err_msg=name_)


def test_noisy_rewards_success_includes_every_ended_answer():
    from synthetic.tasks import Family

    task = make_task("graded", family=Family(p_right=0.9, p_wrong=0.1))
    theta = task.theta_0 + 0.5 * jax.random.normal(jax.random.PRNGKey(2), task.theta_0.shape)
    table = jnp.sum(task.val_weights * jnp.sum(jnp.exp(task.problem.logp(theta)) * task.problem.reward, axis=-1))
    assert float(success(task, theta, task.val_weights)) == pytest.approx(float(table), rel=1e-10)


def test_theta_proj_is_the_projection_of_the_drift(graded_run):
    task, _, metrics = graded_run
    expected = project(np.asarray(metrics["theta"]) - np.asarray(task.theta_0), PROJECTIONS)
    assert metrics["theta_proj"].shape == (40, PROJECTIONS) and metrics["theta_proj"].dtype == jnp.float32
    np.testing.assert_allclose(metrics["theta_proj"], expected, rtol=1e-5, atol=1e-5)  # stored as float32


def test_the_applied_update_is_clipped(graded_run):
    _, config, metrics = graded_run
    steps = np.diff(np.asarray(metrics["theta"]), axis=0)
    assert np.all(np.linalg.norm(steps, axis=-1) <= 4.0 * config.update_clip * (1 + 1e-9))
    assert np.all(np.asarray(metrics["update_norm"]) <= config.update_clip * (1 + 1e-9))
    assert np.max(metrics["update_norm"]) == pytest.approx(config.update_clip, rel=1e-9), "the clip binds"


def test_exact_mode_is_the_exact_async_recursion():
    """θ_{t+1} = θ_t + η g(θ_t, β_t), β_t = θ_{⌊t/τ⌋τ}: the recursion the removed bandit loop computed."""
    task, eta, tau, steps = make_task("contextual"), 2.0, 3, 10
    config = RunConfig(steps=steps, exact_every=steps, gradient="exact", trajectory=True, lemma1=False)
    path = np.asarray(run_jit(task, config, eta, tau, 0)["theta"])
    theta, beta = task.theta_0, task.theta_0
    for t in range(steps):
        np.testing.assert_allclose(path[t], theta, rtol=1e-10, atol=1e-12, err_msg=f"step {t}")
        beta = theta if t % tau == 0 else beta
        theta = theta + eta * surrogate_gradient(task.problem, theta, beta)


def test_batch_reward_agrees_with_the_exact_success():
    task = make_task("graded")
    exact = float(success(task, task.theta_0, task.problem.prompt_weights))
    batches = jax.vmap(lambda key: sample_batch(task, task.theta_0, key, 64, 0))(
        jax.random.split(jax.random.PRNGKey(0), 32))
    rewards = np.asarray(batches.rewards).ravel()
    sigma = np.sqrt(exact * (1 - exact) / rewards.size)
    assert abs(rewards.mean() - exact) < 5 * sigma


def test_same_seed_same_run_and_another_seed_differs():
    task = make_task("contextual")
    first, again, other = (run_jit(task, CONTEXTUAL, 1.0, 2, seed) for seed in (7, 7, 8))
    for name in first:
        np.testing.assert_array_equal(first[name], again[name])
    assert not np.array_equal(first["reward"], other["reward"])


def test_whole_reuse_repeats_the_batch_and_slices_draw_a_new_one(bandit_runs):
    task, runs = bandit_runs
    whole = np.asarray(runs[3]["reward"])
    assert np.all(whole[1::3] == whole[0::3][: len(whole[1::3])]), "the same batch for the τ steps of a cycle"
    sliced = run_jit(task, dataclasses.replace(BANDIT, reuse="slices"), 2.0, 3, 3)
    rewards = np.asarray(sliced["reward"])
    assert not np.all(rewards[1::3] == rewards[0::3][: len(rewards[1::3])])
    np.testing.assert_array_equal(sliced["staleness"], np.arange(40) % 3)


def test_float32_learner_keeps_the_probes_in_float64():
    task = make_task("graded")
    config = RunConfig(steps=20, exact_every=10, learner_dtype="float32")
    metrics = run_jit(task, config, 1.0, 2, 0)
    assert metrics["drift"].dtype == jnp.float32 and metrics["bias_norm"].dtype == jnp.float64
    assert in_precision(task, "float32").problem.reward.dtype == jnp.float32
    assert np.all(np.isfinite(np.asarray(metrics["success"])))
    scaled = run_jit(task, dataclasses.replace(config, ess_base=0.5), 1.0, 2, 0)  # the ESS twin of repro figures
    assert scaled["drift"].dtype == jnp.float32 and np.asarray(scaled["eta_scale"]).min() <= 1.0



@pytest.mark.parametrize("name", ["graded", "contextual"])
def test_float32_learner_step_computes_in_float32(name):
    """No array of the float32 learner step is promoted to float64 (only scalar constants may be): a single
    float64 leaf once made the whole learner run in float64 (0.94× instead of 1.4× faster)."""
    learner = in_precision(make_task(name), "float32")
    config = RunConfig(steps=10, exact_every=10, learner_dtype="float32", update_clip=0.1)
    eta = jnp.asarray(2.0, jnp.float32)
    carry = initial_carry(learner, config, eta, 0)
    jaxpr = jax.make_jaxpr(lambda c: learner_step(learner, config, eta, 3, c, 1))(carry)

    def arrays(jaxpr):
        for equation in jaxpr.eqns:
            yield from (v.aval for v in equation.outvars)
            for param in equation.params.values():
                inner = getattr(param, "jaxpr", None)
                if inner is not None:
                    yield from arrays(getattr(inner, "jaxpr", inner))

    wide = [aval for aval in arrays(jaxpr.jaxpr) if getattr(aval, "dtype", None) == jnp.float64 and aval.shape]
    assert not wide, f"float64 arrays in the float32 learner step: {wide[:5]}"

@pytest.mark.parametrize("bad", [dict(optimizer="rmsprop"), dict(reuse="half"), dict(steps=0), dict(gradient="mc"),
                                 dict(steps=15, exact_every=10), dict(clip_norm=-1.0), dict(update_clip=0.0),
                                 dict(learner_dtype="float16"), dict(gradient="exact", ess_base=0.5)])
def test_bad_run_config_is_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        RunConfig(**bad)


def test_ess_scaled_learning_rate_follows_the_batch_ess():
    task = make_task("contextual")
    scaled_config = dataclasses.replace(CONTEXTUAL, ess_base=1.0)
    on_policy = run_jit(task, scaled_config, 4.0, 1, 2)
    np.testing.assert_allclose(on_policy["eta_scale"], 1.0, atol=1e-12)  # lag 0: every ratio is 1, ess = 1
    np.testing.assert_allclose(on_policy["reward"], run_jit(task, CONTEXTUAL, 4.0, 1, 2)["reward"], atol=1e-9)
    stale = run_jit(task, scaled_config, 4.0, 6, 2)
    np.testing.assert_allclose(stale["eta_scale"], np.minimum(1.0, np.asarray(stale["ess"])), rtol=1e-12)
    assert np.asarray(stale["eta_scale"]).min() < 1.0, "stale batches must lose ESS and so learning rate"


def test_a_diverged_run_is_collapsed_at_its_first_non_finite_step():
    from analysis.events import collapse_step

    # an infinite step makes θ non-finite (inf − inf = NaN in the softmax): the reward must say so
    metrics = run_jit(make_task("contextual"), CONTEXTUAL, np.inf, 2, 0)
    drift, reward = np.asarray(metrics["drift"]), np.asarray(metrics["reward"])
    first = int(np.argmax(~np.isfinite(drift)))
    assert 0 < first < 20 and np.all(np.isnan(reward[first:])) and np.all(np.isfinite(reward[:first]))
    assert int(collapse_step(reward)) == first
