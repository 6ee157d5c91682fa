"""The three synthetic tasks of the sweeps, each with a reference policy θ_0 and a held-out split.

* ``bandit``: one prompt, K = 16 tabular arms, one correct arm. There is no
  other prompt to hold out, so ``val_reward`` is that prompt's exact success.
* ``contextual``: log-linear bandit, 64 prompts (48 train, 16 held out), 16 answers.
* ``autoregressive``: the end-token policy of :mod:`synthetic.autoregressive`,
  64 prompts (48 train, 16 held out), V = 3 content tokens, answers ≤ 4 tokens.
  Each prompt's one correct answer is what a *teacher* of the same family
  (parameters ~ N(0, 4²)) most likely says among ended answers, so the targets
  are learnable and held-out prompts measure generalisation. θ_0 = α·θ_teacher,
  α chosen so that the train success is 0.01, and the fixed end offsets make
  θ_0 ramble: 98% of its answers run into the cap, as a base model's do before
  RL teaches it to stop. Falling back to never stopping is the absorbing collapse.

θ_0 is also the KL reference and starts with a stated success probability.
"""

import dataclasses
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from synthetic import autoregressive
from synthetic.bandit import bandit_task, contextual_task
from synthetic.constants import DiscreteTask

TASKS = ("bandit", "contextual", "autoregressive")

TEACHER_SCALE = 4.0
"""Spread of the teacher's parameters: large enough that its answers are nearly deterministic."""


@dataclass(frozen=True, eq=False)
class SimTask:
    """A task ready for the simulator: the GRPO problem on the train prompts plus what metrics need."""

    problem: DiscreteTask
    """Policy, rewards, train-prompt weights and the GRPO knobs (n, ε, κ, θ_ref, dual clip)."""
    val_weights: jax.Array
    """``[P]`` weights of the held-out prompts (zero on train prompts)."""
    truncated: jax.Array
    """``[Y]`` 1.0 where the answer never ends (all zeros for bandits)."""
    theta_0: jax.Array
    """Initial parameters, also the KL reference."""
    name: str
    answer_logp: Callable | None = None
    """``(θ, prompts [B], answers [B, n]) → log π_θ [B, n]`` when cheaper than gathering from the full table."""
    answer_sampler: Callable | None = None
    """``(θ, prompts [B], key, n) → answers [B, n]`` when cheaper than sampling from the full table."""
    score_norm: Callable | None = None
    """``θ → ‖∇ log π_θ(y|x)‖ [P, Y]`` when cheaper than the Jacobian of the table (Lemma 1's G)."""

    def sampled_logp(self, theta, prompts, answers):
        """``log π_θ(y|x)`` of sampled (prompt, answer) pairs, ``[B, n]``."""
        if self.answer_logp is not None:
            return self.answer_logp(theta, prompts[:, None], answers)
        return self.problem.logp_fn(theta)[prompts[:, None], answers]


def _split(n_prompts, n_val):
    train = np.r_[np.ones(n_prompts - n_val), np.zeros(n_val)]
    return jnp.asarray(train / train.sum()), jnp.asarray((1 - train) / n_val)


def success(task, theta, weights):
    """Exact expected success ``Σ_x w_x Σ_y π_θ(y|x) r(x, y)``."""
    return jnp.sum(weights * jnp.sum(jnp.exp(task.problem.logp_fn(theta)) * task.problem.reward, axis=-1))


def make_task(name, n=8, eps=0.2, kappa=0.0, dual_clip=None, seed=0):
    """Build task ``name`` (one of :data:`TASKS`) with the GRPO knobs; prompts and features from ``seed``."""
    if name == "bandit":
        arms = 16
        theta_0 = jnp.zeros(arms).at[0].set(-1.0)  # success 1/(1 + 15e) ≈ 0.024: rare correct answers
        problem = bandit_task(arms, [0], n, eps, kappa, theta_0, dual_clip)
        return SimTask(problem, jnp.ones(1), jnp.zeros(arms), theta_0, name)
    if name == "contextual":
        problem, _ = contextual_task(64, 16, 8, n, eps, kappa, seed, dual_clip)
        train, val = _split(64, 16)
        problem = dataclasses.replace(problem, prompt_weights=train)
        return SimTask(problem, val, jnp.zeros(16), problem.theta_ref, name)
    if name == "autoregressive":
        return _autoregressive(n, eps, kappa, dual_clip, seed)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")


def _autoregressive(n, eps, kappa, dual_clip, seed, vocab=3, max_len=4, n_features=8, n_prompts=64, n_val=16,
                    teacher_scale=TEACHER_SCALE, initial_success=0.01, end_logit=-3.0):
    rng = np.random.default_rng(seed)
    answers = autoregressive.enumerate_answers(vocab, max_len)
    features = rng.normal(size=(n_prompts, n_features)) / np.sqrt(n_features)
    # e_j: a rambling start, as a base model's: 98% of θ_0's answers run into the cap (end logit −3 everywhere)
    end_offsets = np.full(max_len, end_logit)
    policy = autoregressive.make_policy(answers, features, vocab, end_offsets)
    logp_fn = policy.logp
    teacher = jnp.asarray(teacher_scale * rng.normal(size=autoregressive.n_params(vocab, max_len, n_features)))
    targets = autoregressive.teacher_targets(answers, logp_fn(teacher))
    reward = jnp.asarray(autoregressive.exact_match_reward(len(answers.tokens), targets))
    train, val = _split(n_prompts, n_val)
    problem = DiscreteTask(logp_fn, reward, train, n, eps, kappa, teacher, dual_clip)
    alpha = _shrink_to_success(
        lambda a: float(jnp.sum(train * jnp.sum(jnp.exp(logp_fn(a * teacher)) * reward, axis=-1))), initial_success)
    theta_0 = alpha * teacher
    problem = dataclasses.replace(problem, theta_ref=theta_0)
    return SimTask(problem, val, jnp.asarray(answers.truncated, float), theta_0, "autoregressive",
                   policy.sequence_logp, policy.sample, policy.score_norm)


def _shrink_to_success(success_at, target, iterations=50):
    """The α ∈ (0, 1] at which ``success_at(α)`` equals ``target`` (bisection; success grows with α here)."""
    if success_at(1.0) < target:
        raise ValueError(f"the teacher's own success {success_at(1.0):.3g} is below the initial success {target}")
    low, high = 0.0, 1.0
    for _ in range(iterations):
        mid = (low + high) / 2
        low, high = (mid, high) if success_at(mid) < target else (low, mid)
    return high
