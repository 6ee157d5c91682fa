"""Autoregressive log-linear policy over short answers with an end token (SYNTHETIC_NOTES.md).

Tokens ``0..V−1`` are content, ``V`` is EOS. An answer is generated token by
token until EOS or until ``L`` tokens; an answer that never emits EOS is
*truncated* and earns reward 0 whatever it says, so "never end" is an absorbing
collapse, as in LLM GRPO with a length cap. The next-token logits share
parameters across prompts and positions:

    logit(x, j, prev, v)   = T[prev, v] + Q[j, v] + f(x)·W[:, v]     (content token v < V),
    logit(x, j, prev, EOS) = T[prev, EOS] + e_j,

with ``θ = (T, Q, W)`` flattened, ``f(x) ∈ R^k`` fixed prompt features and
``e_j`` a fixed end offset per position. The decision to end is shared by every
prompt and position (only the previous token moves it), as a language model's
end-of-answer habit is: one large step against an ended answer shortens or
lengthens every answer at once, which is how the end-token toys of
SYNTHETIC_NOTES.md collapsed. Every answer is enumerated, so ``log π_θ(y|x)``
is an exact ``[P, Y]`` table like the bandits' and :mod:`synthetic.exact`
applies unchanged.
"""

import itertools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class AnswerSet(NamedTuple):
    """All answers of length ≤ L, padded: ``tokens [Y, L]`` (pad = EOS), ``length [Y]`` (tokens emitted)."""

    tokens: np.ndarray
    length: np.ndarray
    truncated: np.ndarray
    """``[Y]`` bool: the answer has L content tokens and no EOS."""


def enumerate_answers(vocab, max_len):
    """Every answer: m < L content tokens then EOS (m = 0..L−1), or L content tokens (truncated)."""
    eos, rows, lengths = vocab, [], []
    for m in range(max_len + 1):
        for content in itertools.product(range(vocab), repeat=m):
            rows.append(list(content) + [eos] * (max_len - m))
            lengths.append(min(m + 1, max_len))
    tokens, length = np.array(rows, dtype=np.int32), np.array(lengths, dtype=np.int32)
    return AnswerSet(tokens, length, np.all(tokens < eos, axis=1))


def n_params(vocab, max_len, n_features):
    """``d = (V+2)(V+1) + LV + kV``: transitions (BOS, V content, EOS as prev), positions, prompt features."""
    return (vocab + 2) * (vocab + 1) + max_len * vocab + n_features * vocab


class Policy(NamedTuple):
    """The end-token policy over an enumerated answer set, as the functions the engines call."""

    logp: Callable
    """``θ ↦ log π_θ(y|x)``, the exact ``[P, Y]`` table."""
    sequence_logp: Callable
    """``(θ, prompts [B], answer ids [B, n]) ↦ log π_θ [B, n]``: only the sampled answers, so the learner's
    per-step cost scales with the batch, not with ``P·Y``."""
    sample: Callable
    """``(θ, prompts [B], key, n) ↦ answer ids [B, n]``, token by token as a language model samples."""
    score_norm: Callable
    """``θ ↦ ‖∇_θ log π_θ(y|x)‖ [P, Y]`` in closed form, without the ``[P, Y, d]`` Jacobian."""


def make_policy(answers, prompt_features, vocab, end_offsets):
    """Build the :class:`Policy` above over ``answers``; ``end_offsets`` are the fixed ``e_j``, one per position."""
    n_tokens = vocab + 1
    bos = vocab + 1
    tokens = np.asarray(answers.tokens)
    n_answers, max_len = tokens.shape
    prev = np.concatenate([np.full((n_answers, 1), bos), tokens[:, :-1]], axis=1)  # [Y, L]
    emitted = np.arange(max_len)[None, :] < np.asarray(answers.length)[:, None]  # [Y, L]
    # A token's distribution depends on (position j, previous token, prompt) only, so log π(y|x) is a sum of
    # entries of the context table log p(x, j, prev, v): the fixed 0/1 matrix S picks them. A product with S,
    # unlike a gather, has a dense gradient (a gather's is a scatter-add, slow on CPU).
    selector = np.zeros((n_answers, max_len, vocab + 2, n_tokens))
    y, j = np.nonzero(emitted)
    selector[y, j, prev[y, j], tokens[y, j]] = 1.0
    selector = jnp.asarray(selector.reshape(n_answers, -1))  # [Y, K], K = L(V+2)(V+1)
    token_onehot = jnp.asarray(np.eye(n_tokens)[tokens] * emitted[..., None])  # [Y, L, V+1], 0 after the end
    same_prev = jnp.asarray(prev[:, :, None] == prev[:, None, :], dtype=float)  # [Y, L, L]
    tokens, prev, emitted = jnp.asarray(tokens), jnp.asarray(prev), jnp.asarray(emitted)
    features = jnp.asarray(prompt_features)
    n_features = features.shape[1]
    sizes = ((vocab + 2) * n_tokens, max_len * vocab, n_features * vocab)
    offsets = jnp.asarray(end_offsets, dtype=float).reshape(max_len, 1)

    def blocks(theta):
        """``T [V+2, V+1]``, ``Q [L, V+1]`` (end column e_j) and ``W [k, V+1]`` (end column 0)."""
        transition = theta[: sizes[0]].reshape(vocab + 2, n_tokens)
        position = jnp.concatenate([theta[sizes[0]: sizes[0] + sizes[1]].reshape(max_len, vocab), offsets], axis=1)
        prompt = jnp.concatenate([theta[sizes[0] + sizes[1]:].reshape(n_features, vocab),
                                  jnp.zeros((n_features, 1))], axis=1)
        return transition, position, prompt

    def context_logits(theta):
        """Next-token logits of every (prompt, position, previous token): ``[P, L, V+2, V+1]``."""
        transition, position, weights = blocks(theta)
        prompt = features @ weights  # [P, V+1]
        return transition[None, None] + position[None, :, None, :] + prompt[:, None, None, :]

    def logp(theta):
        context = jax.nn.log_softmax(context_logits(theta), axis=-1)  # every next-token log-prob an answer can use
        return context.reshape(context.shape[0], -1) @ selector.T

    def score_norm(theta):
        # ∇ log π(y|x) = Σ_j ∂logits_j^T δ_j with δ_j = e_{y_j} − π(·|x, j, y_{j−1}): δ_j lands on T's row y_{j−1}
        # (rows shared by equal previous tokens), on Q's row j and, through f(x), on W (content columns only)
        probs = jax.nn.softmax(context_logits(theta), axis=-1)
        delta = token_onehot[None] - probs[:, jnp.arange(max_len)[None, :], prev] * emitted[None, ..., None]
        # Σ_{j,k: same previous token} δ_j·δ_k, as one fused product: L = 4 is far too small for a batched dot
        shared = jnp.sum(same_prev[None, ..., None] * delta[:, :, :, None, :] * delta[:, :, None, :, :], axis=(2, 3, 4))
        content = delta[..., :vocab]
        squared = (shared + jnp.sum(content * content, axis=(-2, -1))
                   + jnp.sum(features * features, axis=-1)[:, None] * jnp.sum(jnp.sum(content, axis=2) ** 2, axis=-1))
        return jnp.sqrt(squared)

    def sequence_logp(theta, prompt_ids, answer_ids):  # ids of equal rank, broadcast against each other
        transition, position, weights = blocks(theta)
        prompt = features[prompt_ids] @ weights  # [..., V+1]
        position = position.reshape((1,) * answer_ids.ndim + position.shape)
        logits = transition[prev[answer_ids]] + position + prompt[..., None, :]  # [..., L, V+1]
        token_logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[answer_ids][..., None], axis=-1)
        return jnp.sum(jnp.where(emitted[answer_ids], token_logp[..., 0], 0.0), axis=-1)

    # answers are enumerated by content length m, then as base-V numbers: id = Σ_{k<m} V^k + digits
    first_id = jnp.asarray(np.cumsum([0] + [vocab**m for m in range(max_len)]))

    def sample(theta, prompt_ids, key, n):
        transition, position, weights = blocks(theta)
        prompt = (features[prompt_ids] @ weights)[:, None, :]  # [B, 1, V+1]
        shape = (prompt_ids.shape[0], n)
        prev_token, ended = jnp.full(shape, bos), jnp.zeros(shape, bool)
        digits, count = jnp.zeros(shape, int), jnp.zeros(shape, int)
        # inverse CDF per token: one uniform per (answer, position), the cheapest draw on CPU
        uniforms = jax.random.uniform(key, (max_len, *shape, 1))
        for j in range(max_len):
            cdf = jnp.cumsum(jax.nn.softmax(transition[prev_token] + position[j][None, None] + prompt, axis=-1), -1)
            token = jnp.minimum(jnp.sum(cdf < uniforms[j], axis=-1), vocab)
            content = ~ended & (token < vocab)
            digits = jnp.where(content, digits * vocab + token, digits)
            count = count + content
            ended = ended | (token == vocab)
            prev_token = token
        return first_id[count] + digits

    return Policy(logp, sequence_logp, sample, score_norm)


def teacher_targets(answers, logp_teacher):
    """Each prompt's target: the teacher's most likely answer among those that end, ``[P]`` answer ids."""
    return np.argmax(np.where(answers.truncated[None], -np.inf, np.asarray(logp_teacher)), axis=1)


def exact_match_reward(n_answers, targets):
    """Reward 1 iff the answer is the prompt's target: ``[P, Y]``."""
    reward = np.zeros((len(targets), n_answers))
    reward[np.arange(len(targets)), targets] = 1.0
    return reward
