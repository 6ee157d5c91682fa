"""The synthetic tasks of the sweeps, each with θ_0, a held-out split and a stated initial success.

* ``graded`` (the substrate family designed for Theorem 2, docs/substrate.md): the
  end-token policy of :mod:`synthetic.autoregressive` (V = 3 content tokens,
  answers ≤ 4 tokens, 64 prompts of which 16 held out). Prompt x accepts the
  ``m_x`` answers a teacher of the same family ranks highest among ended answers,
  with ``m_x`` cycling through 1..``accept_max`` (graded difficulty); an accepted
  answer earns reward 1 with probability ``p_right``, any other ended answer with
  ``p_wrong``, a truncated one never. θ_0 = α·θ_teacher with α set so that the
  train success is ``initial_success``, and the end offsets ``end_logit`` keep θ_0
  away from truncation, the absorbing state ("never end": every reward 0).
* ``autoregressive`` (control, the earlier end-token toy): one accepted answer,
  deterministic rewards, θ_0 at success 0.01 rambling into the cap 98 % of the time.
* ``bandit``: one prompt, K = 16 tabular arms, one correct arm (control).
* ``contextual``: log-linear bandit, 64 prompts (48 train, 16 held out), 16 answers (control).
"""

import dataclasses
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from synthetic import autoregressive
from synthetic.bandit import bandit_task, contextual_task
from synthetic.exact import DiscreteTask
from synthetic.simulate import SimTask, success, truncation

TASKS = ("graded", "autoregressive", "bandit", "contextual")


@dataclass(frozen=True)
class Family:
    """The knobs of the ``graded`` substrate family (defaults chosen by the phase search, docs/substrate.md)."""

    initial_success: float = 0.3
    """Exact train success of θ_0."""
    initial_truncation: float | None = 0.05
    """Probability that θ_0's answers run into the cap (none: θ_0 = α·θ_teacher, whatever it truncates)."""
    end_logit: float = 1.0
    """Fixed end offset e_j at every position: the teacher's end habit, so its targets' lengths."""
    p_right: float = 0.9
    """Probability that an accepted answer earns reward 1."""
    p_wrong: float = 0.1
    """Probability that an ended, not accepted answer earns reward 1 (noise that keeps groups mixed: no freeze)."""
    accept_max: int = 3
    """Prompt x accepts its teacher's top 1 + (x mod accept_max) ended answers (graded difficulty)."""
    teacher_scale: float = 4.0
    """Spread of the teacher's parameters: large enough that its answers are nearly deterministic."""

    @classmethod
    def parse(cls, text):
        """``"key=value,..."`` (``none`` for an absent value) → a :class:`Family`; ``""`` is the default."""
        kinds = {f.name: int if f.name == "accept_max" else float for f in dataclasses.fields(cls)}
        values = {}
        for item in filter(None, (part.strip() for part in str(text).split(","))):
            key, _, value = (part.strip() for part in item.partition("="))
            if key not in kinds:
                raise ValueError(f"family knob {key!r} is not one of {', '.join(kinds)}")
            try:
                values[key] = None if value == "none" else kinds[key](value)
            except ValueError:
                raise ValueError(f"family knob {key} = {value!r} is not a number") from None
        return cls(**values)

    def __post_init__(self):
        if not 0 < self.initial_success < 1:
            raise ValueError(f"initial_success = {self.initial_success} must be in (0, 1)")
        if not 0 <= self.p_wrong < self.p_right <= 1:
            raise ValueError(f"p_wrong = {self.p_wrong}, p_right = {self.p_right}: need 0 ≤ p_wrong < p_right ≤ 1")
        if self.accept_max < 1:
            raise ValueError(f"accept_max = {self.accept_max} must be ≥ 1")
        if self.initial_truncation is not None and not 0 < self.initial_truncation < 1:
            raise ValueError(f"initial_truncation = {self.initial_truncation} must be in (0, 1)")
        if not (np.isfinite(self.end_logit) and self.teacher_scale > 0):
            raise ValueError(f"end_logit = {self.end_logit} must be finite, teacher_scale = {self.teacher_scale} > 0")


EARLIER_TOY = Family(initial_success=0.01, initial_truncation=None, end_logit=-3.0, p_right=1.0, p_wrong=0.0,
                     accept_max=1)
"""The earlier end-token toy (``autoregressive``) as a member of the family."""


def make_task(name, n=8, eps=0.2, kappa=0.0, dual_clip=None, seed=0, family=Family()):
    """Build task ``name`` (one of :data:`TASKS`) with the GRPO knobs; prompts and features from ``seed``;
    ``family`` sets the ``graded`` substrate's knobs."""
    if name == "graded":
        return _graded(n, eps, kappa, dual_clip, seed, family)
    if name == "autoregressive":
        return _graded(n, eps, kappa, dual_clip, seed, EARLIER_TOY, name="autoregressive")
    if name == "bandit":
        theta_0 = jnp.zeros(16).at[0].set(-1.0)  # success 1/(1 + 15e) ≈ 0.024: rare correct answers
        return SimTask.from_problem(bandit_task(16, [0], n, eps, kappa, theta_0, dual_clip), theta_0, name=name)
    if name == "contextual":
        problem, _ = contextual_task(64, 16, 8, n, eps, kappa, seed, dual_clip)
        train, val = _split(64, 16)
        return SimTask.from_problem(dataclasses.replace(problem, prompt_weights=train), problem.theta_ref, val,
                                    name=name)
    raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")


def _split(n_prompts, n_val):
    train = np.r_[np.ones(n_prompts - n_val), np.zeros(n_val)]
    return jnp.asarray(train / train.sum()), jnp.asarray((1 - train) / n_val)


def _graded(n, eps, kappa, dual_clip, seed, family, name="graded", vocab=3, max_len=4, n_features=8, n_prompts=64,
            n_val=16):
    rng = np.random.default_rng(seed)
    answers = autoregressive.enumerate_answers(vocab, max_len)
    features = rng.normal(size=(n_prompts, n_features)) / np.sqrt(n_features)
    policy = autoregressive.make_policy(answers, features, vocab, np.full(max_len, family.end_logit))
    teacher = family.teacher_scale * rng.normal(size=autoregressive.n_params(vocab, max_len, n_features))
    end = np.zeros_like(teacher)
    end[np.arange(vocab + 2) * (vocab + 1) + vocab] = 1.0  # T[prev, EOS]: the trainable half of the end decision
    if family.initial_truncation is not None:
        teacher = teacher * (1.0 - end)  # the teacher's end habit is the fixed offsets alone
    teacher = jnp.asarray(teacher)
    # each prompt's accepted answers: its teacher's favourite ended answers, 1 + (x mod accept_max) of them
    ranked = np.argsort(-np.where(answers.truncated[None], -np.inf, np.asarray(policy.logp(teacher))), axis=1,
                        kind="stable")[:, : family.accept_max]
    accepted = np.arange(family.accept_max)[None, :] <= (np.arange(n_prompts) % family.accept_max)[:, None]
    gain = (family.p_right - family.p_wrong) * accepted
    reward = np.where(answers.truncated[None], 0.0, family.p_wrong) * np.ones((n_prompts, 1))
    np.put_along_axis(reward, ranked, np.take_along_axis(reward, ranked, 1) + gain, axis=1)
    train, val = _split(n_prompts, n_val)
    problem = DiscreteTask(policy, jnp.asarray(reward), train, None, n, eps, kappa, dual_clip)
    task = SimTask.from_problem(problem, teacher, val, name, family.p_wrong).check()
    theta_0 = _initial_point(task, teacher, jnp.asarray(end), family)
    return dataclasses.replace(task, problem=dataclasses.replace(problem, theta_ref=theta_0), theta_0=theta_0)


def _initial_point(task, teacher, end, family):
    """θ_0 = α·θ_teacher + b·(end columns): α sets the train success, b the truncation (b = 0 when
    ``initial_truncation`` is None, the earlier toy's rambling start)."""
    @jax.jit
    def state(alpha, bias):
        theta = alpha * teacher + bias * end
        weights = task.problem.prompt_weights
        return success(task, theta, weights), jnp.sum(weights * truncation(task, theta))

    if family.initial_truncation is None:
        return _bisect(lambda a: float(state(a, 0.0)[0]), family.initial_success, 0.0, ALPHA_MAX,
                       "initial_success") * teacher

    def bias_for(alpha):  # truncation falls as the end bias b grows
        return _bisect(lambda b: -float(state(alpha, b)[1]), -family.initial_truncation, -END_BIAS_MAX, END_BIAS_MAX,
                       "initial_truncation")

    # at the stated truncation, success grows with α (the content sharpens towards the targets)
    alpha = _bisect(lambda a: float(state(a, bias_for(a))[0]), family.initial_success, 0.0, ALPHA_MAX,
                    "initial_success")
    return alpha * teacher + bias_for(alpha) * end


ALPHA_MAX = 2.0
"""Largest multiple of the teacher tried for θ_0."""

END_BIAS_MAX = 40.0
"""Largest end bias |b| tried for θ_0."""


def _bisect(increasing, target, low, high, what, iterations=40):
    """The x ∈ [low, high] at which the increasing function ``increasing(x)`` reaches ``target`` (``what`` names
    it in the error when it cannot)."""
    at_low, at_high = increasing(low), increasing(high)
    if not at_low < target <= at_high:
        ends = sorted(abs(v) for v in (at_low, at_high))
        raise ValueError(f"{what} = {abs(target):g} is outside [{ends[0]:.3g}, {ends[1]:.3g}], what θ_0 can reach "
                         f"from this teacher")
    for _ in range(iterations):
        mid = (low + high) / 2
        low, high = (mid, high) if increasing(mid) < target else (low, mid)
    return high
