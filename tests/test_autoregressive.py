"""The end-token policy: exact enumeration, normalisation, and the sampled-answer fast path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from synthetic import autoregressive
from synthetic.constants import lemma1_bound_at, score_norms
from synthetic.simulate import success, truncation
from synthetic.tasks import TASKS, Family, make_task


@pytest.mark.parametrize("vocab, max_len", [(2, 3), (3, 4)])
def test_answers_are_every_sequence_up_to_the_cap(vocab, max_len):
    answers = autoregressive.enumerate_answers(vocab, max_len)
    assert len(answers.tokens) == sum(vocab**m for m in range(max_len + 1))
    assert len({tuple(row) for row in answers.tokens}) == len(answers.tokens)
    assert answers.truncated.sum() == vocab**max_len
    assert np.all(answers.length[answers.truncated] == max_len)


def test_policy_is_normalised_and_the_gather_matches_the_table():
    answers = autoregressive.enumerate_answers(3, 4)
    features = np.random.default_rng(0).normal(size=(5, 4))
    policy = autoregressive.make_policy(answers, features, 3, end_offsets=[-1.0, 0.0, 0.5, 2.0])
    logp, answer_logp = policy.logp, policy.sequence_logp
    theta = jax.random.normal(jax.random.PRNGKey(1), (autoregressive.n_params(3, 4, 4),))
    table = logp(theta)
    np.testing.assert_allclose(np.exp(table).sum(axis=1), 1.0, rtol=1e-12)
    prompts, picks = jnp.array([0, 4, 2]), jnp.array([[0, 120, 7], [1, 2, 3], [100, 50, 0]])
    np.testing.assert_allclose(answer_logp(theta, prompts[:, None], picks), table[prompts[:, None], picks], atol=1e-12)


def test_truncated_answers_earn_nothing():
    task = make_task("autoregressive")
    assert float(jnp.max(task.problem.reward * task.problem.policy.truncated[None])) == 0.0


@pytest.mark.parametrize("name", TASKS)
def test_tasks_start_with_mixed_rewards(name):
    task = make_task(name)
    train = float(success(task, task.theta_0, task.problem.prompt_weights))
    assert 0.005 < train < 0.5, f"{name}: initial success {train} leaves GRPO no mixed groups"
    assert float(jnp.sum(task.val_weights * task.problem.prompt_weights)) == 0.0 or name == "bandit"


def test_the_graded_family_starts_where_it_says():
    family = Family()
    task = make_task("graded", family=family)
    weights, reward = task.problem.prompt_weights, np.asarray(task.problem.reward)
    assert float(success(task, task.theta_0, weights)) == pytest.approx(family.initial_success, abs=1e-6)
    assert float(jnp.sum(weights * truncation(task, task.theta_0))) == pytest.approx(family.initial_truncation,
                                                                                       abs=1e-6)
    accepted = (reward > family.p_wrong).sum(axis=1)
    np.testing.assert_array_equal(accepted, 1 + np.arange(64) % family.accept_max)  # graded difficulty
    assert set(np.unique(reward)) == {0.0, family.p_wrong, family.p_right}
    per_prompt = np.sum(np.exp(np.asarray(task.problem.logp(task.theta_0))) * reward, axis=1)[:48]
    assert per_prompt.max() > 5 * per_prompt.min(), "prompts of graded difficulty at θ_0"


def test_targets_are_the_teachers_ended_answers_and_theta0_states_its_success():
    task = make_task("autoregressive")
    reward = np.asarray(task.problem.reward)
    truncated = np.asarray(task.problem.policy.truncated)
    assert np.all(reward.sum(axis=1) == 1.0), "exactly one correct answer per prompt"
    assert not np.any(reward[:, truncated]), "a truncated answer is never a target"
    assert float(success(task, task.theta_0, task.problem.prompt_weights)) == pytest.approx(0.01, abs=1e-9)
    trunc = float(jnp.sum(task.problem.prompt_weights * truncation(task, task.theta_0)))
    assert trunc > 0.9, "θ_0 rambles: most answers run into the cap"


def test_the_end_decision_has_no_prompt_parameters():
    answers = autoregressive.enumerate_answers(2, 3)
    features = np.random.default_rng(0).normal(size=(4, 3))
    logp = autoregressive.make_policy(answers, features, 2, end_offsets=[0.0, 0.0, 0.0]).logp
    theta = jax.random.normal(jax.random.PRNGKey(2), (autoregressive.n_params(2, 3, 3),))
    d_transition = (2 + 2) * (2 + 1)
    d_position = 3 * 2
    assert theta.size == d_transition + d_position + 3 * 2, "W has content columns only"
    table = np.asarray(logp(theta.at[d_transition + d_position:].set(0.0)))  # W = 0: prompts differ no more
    np.testing.assert_allclose(table, table[:1].repeat(4, axis=0), atol=1e-12)


def test_token_by_token_sampling_draws_from_the_exact_table():
    answers = autoregressive.enumerate_answers(2, 3)
    features = np.random.default_rng(0).normal(size=(3, 2))
    policy = autoregressive.make_policy(answers, features, 2, end_offsets=[-0.5, 0.0, 0.5])
    logp, sample = policy.logp, policy.sample
    theta = jax.random.normal(jax.random.PRNGKey(3), (autoregressive.n_params(2, 3, 2),))
    prompts, n = jnp.array([0, 2]), 40_000
    drawn, drawn_logp = jax.jit(sample, static_argnums=3)(theta, prompts, jax.random.PRNGKey(4), n)
    drawn = np.asarray(drawn)
    np.testing.assert_allclose(drawn_logp, policy.sequence_logp(theta, prompts[:, None], drawn), rtol=1e-10)
    exact = np.exp(np.asarray(logp(theta))[np.asarray(prompts)])  # [2, Y]
    for row, p in zip(drawn, exact):
        frequency = np.bincount(row, minlength=p.size) / n
        assert np.all(np.abs(frequency - p) <= 5 * np.sqrt(p * (1 - p) / n) + 1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_sampler_records_the_log_probs_the_learner_computes(dtype):
    """ρ = 1 exactly at θ = β: the behaviour log-probs the sampler records are, bit for bit, the learner's."""
    task = make_task("graded")
    policy = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a,
                          task.problem.policy)
    theta = (task.theta_0 + 0.3 * jax.random.normal(jax.random.PRNGKey(1), task.theta_0.shape)).astype(dtype)
    prompts = jnp.arange(16) * 3
    drawn, drawn_logp = jax.jit(policy.sample, static_argnums=3)(theta, prompts, jax.random.PRNGKey(7), 8)
    np.testing.assert_array_equal(drawn_logp, jax.jit(policy.sequence_logp)(theta, prompts[:, None], drawn))


@pytest.mark.parametrize("vocab, max_len", [(2, 3), (3, 4), (4, 2), (2, 1)])
def test_closed_form_score_norms_equal_the_jacobians(vocab, max_len):
    answers = autoregressive.enumerate_answers(vocab, max_len)
    features = np.random.default_rng(vocab).normal(size=(5, 3))
    policy = autoregressive.make_policy(answers, features, vocab, end_offsets=np.linspace(-1.0, 1.0, max_len))
    theta = 2.0 * jax.random.normal(jax.random.PRNGKey(vocab), (autoregressive.n_params(vocab, max_len, 3),))
    jacobian = np.asarray(jax.jacfwd(policy.logp)(theta))  # [P, Y, d]
    np.testing.assert_allclose(policy.score_norm(theta), np.linalg.norm(jacobian, axis=-1), rtol=1e-10, atol=1e-12)


def test_lemma1_terms_are_the_same_with_the_closed_form_score_norms():
    task = make_task("graded")
    problem = task.problem
    theta = task.theta_0 + 0.5 * jax.random.normal(jax.random.PRNGKey(5), task.theta_0.shape)
    beta = theta + 0.1 * jax.random.normal(jax.random.PRNGKey(6), theta.shape)
    jacobian = jax.jacfwd(problem.logp)(theta)
    np.testing.assert_allclose(score_norms(problem, theta), jnp.linalg.norm(jacobian, axis=-1), rtol=1e-10)
    terms = lemma1_bound_at(problem, theta, beta)
    assert float(terms.bias_norm) <= float(terms.bound) and float(terms.bias_norm) <= float(terms.bound_alt)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_flat_row_paths_equal_a_per_answer_reference(dtype, scale):
    """The table, the sampled-answer log-probs (both id layouts) and the truncation, which run on flat
    ``[rows, V+1]`` views, against a numpy loop over each answer's positions; scale 40 gives next-token log-probs
    down to about −400, beyond float32's exp."""
    vocab, max_len = 3, 4
    answers = autoregressive.enumerate_answers(vocab, max_len)
    policy = autoregressive.make_policy(answers, np.random.default_rng(7).normal(size=(5, 4)), vocab,
                                        end_offsets=[-1.0, 0.0, 0.5, 2.0])
    theta = scale * np.random.default_rng(8).normal(size=autoregressive.n_params(vocab, max_len, 4))
    transition, position, weights = (np.asarray(block) for block in policy.blocks(jnp.asarray(theta)))
    prompt = np.asarray(policy.features) @ weights
    prev = np.concatenate([np.full((len(answers.tokens), 1), vocab + 1), answers.tokens[:, :-1]], axis=1)
    reference = np.zeros((5, len(answers.tokens)))
    for x in range(5):
        for y, (tokens, length) in enumerate(zip(answers.tokens, answers.length)):
            for j in range(length):
                logits = transition[prev[y, j]] + position[j] + prompt[x]
                top = logits.max()
                reference[x, y] += logits[tokens[j]] - top - np.log(np.sum(np.exp(logits - top)))
    low = jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, policy)
    theta = jnp.asarray(theta, dtype=dtype)
    tolerance = dict(rtol=1e-10, atol=1e-10) if dtype == "float64" else dict(rtol=2e-6, atol=2e-5 * scale)
    table = low.logp(theta)
    assert table.dtype == dtype
    np.testing.assert_allclose(table, reference, **tolerance)
    prompts, picks = np.array([0, 4, 2, 3]), np.array([[0, 120, 7], [1, 2, 3], [100, 50, 0], [40, 39, 13]])
    np.testing.assert_allclose(low.sequence_logp(theta, jnp.asarray(prompts)[:, None], jnp.asarray(picks)),
                               reference[prompts[:, None], picks], **tolerance)
    np.testing.assert_allclose(low.sequence_logp(theta, jnp.asarray(prompts), jnp.asarray(picks[:, 0])),
                               reference[prompts, picks[:, 0]], **tolerance)
    # one prompt against every pick ([1, 1] against [4, 3]: broadcast, not a per-group prompt)
    np.testing.assert_allclose(low.sequence_logp(theta, jnp.asarray([[2]]), jnp.asarray(picks)),
                               reference[2][picks], **tolerance)
    truncated = np.exp(reference) @ answers.truncated.astype(float)
    np.testing.assert_allclose(low.truncation(theta), truncated, rtol=1e-10 if dtype == "float64" else 1e-5,
                               atol=1e-300 if dtype == "float64" else 1e-30)


@pytest.mark.parametrize("vocab, max_len", [(3, 4), (2, 1)])
def test_the_reachable_contexts_give_the_full_tables_product(vocab, max_len):
    """logp's selector product over the reachable contexts equals the product over the whole context table (the
    previous computation) in float64, and every answer's entries are among them."""
    answers = autoregressive.enumerate_answers(vocab, max_len)
    policy = autoregressive.make_policy(answers, np.random.default_rng(9).normal(size=(6, 3)), vocab,
                                        end_offsets=np.linspace(-1.0, 1.0, max_len))
    theta = 3.0 * jax.random.normal(jax.random.PRNGKey(9), (autoregressive.n_params(vocab, max_len, 3),))
    tokens = np.asarray(answers.tokens)
    prev = np.concatenate([np.full((len(tokens), 1), vocab + 1), tokens[:, :-1]], axis=1)
    full = np.zeros((len(tokens), max_len, vocab + 2, vocab + 1))
    y, j = np.nonzero(np.arange(max_len)[None] < np.asarray(answers.length)[:, None])
    full[y, j, prev[y, j], tokens[y, j]] = 1.0
    context = jax.nn.log_softmax(policy.context_logits(theta), axis=-1)
    expected = np.asarray(context).reshape(6, -1) @ full.reshape(len(tokens), -1).T
    assert policy.selector.shape[1] == (vocab + 1) * (1 + (max_len - 1) * vocab) < full[0].size
    np.testing.assert_allclose(policy.logp(theta), expected, rtol=1e-14, atol=1e-14)
