"""The three synthetic tasks of the sweeps, each with a reference policy θ_0 and a held-out split.

* ``bandit``: one prompt, K = 16 tabular arms, one correct arm. There is no
  other prompt to hold out, so ``val_reward`` is that prompt's exact success.
* ``contextual``: log-linear bandit, 64 prompts (48 train, 16 held out), 16 answers.
* ``autoregressive``: the end-token policy of :mod:`synthetic.autoregressive`,
  64 prompts (48 train, 16 held out), V = 3 content tokens, answers ≤ 4 tokens.

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
                    eos_logit=1.0, min_content=1, n_targets=None):
    rng = np.random.default_rng(seed)
    answers = autoregressive.enumerate_answers(vocab, max_len)
    features = rng.normal(size=(n_prompts, n_features)) / np.sqrt(n_features)
    targets = rng.integers(0, n_targets or vocab, size=n_prompts)
    logp_fn, answer_logp = autoregressive.make_logp(answers, features, vocab)
    theta_0 = np.zeros(autoregressive.n_params(vocab, max_len, n_features))
    # EOS logit +1 after the first token: answers mostly end, as an instruction-tuned policy's do.
    position = theta_0[(vocab + 2) * (vocab + 1):][: max_len * (vocab + 1)].reshape(max_len, vocab + 1)
    position[1:, vocab] = eos_logit
    position[0, vocab] = -3.0
    theta_0 = jnp.asarray(theta_0)
    train, val = _split(n_prompts, n_val)
    reward = jnp.asarray(autoregressive.first_token_reward(answers, targets, min_content))
    problem = DiscreteTask(logp_fn, reward, train, n, eps, kappa, theta_0, dual_clip)
    return SimTask(problem, val, jnp.asarray(answers.truncated, float), theta_0, "autoregressive", answer_logp)
