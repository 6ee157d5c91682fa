"""Autoregressive log-linear policy over short answers with an end token (SYNTHETIC_NOTES.md).

Tokens ``0..V−1`` are content, ``V`` is EOS. An answer is generated token by
token until EOS or until ``L`` tokens; an answer that never emits EOS is
*truncated* and earns reward 0 whatever it says, so "never end" is an absorbing
collapse, as in LLM GRPO with a length cap. The next-token logits share
parameters across prompts and positions:

    logit(x, j, prev, next) = T[prev, next] + Q[j, next] + f(x)·W[:, next],

with ``θ = (T, Q, W)`` flattened, ``f(x) ∈ R^k`` fixed prompt features. Every
answer is enumerated, so ``log π_θ(y|x)`` is an exact ``[P, Y]`` table like the
bandits' and :mod:`synthetic.exact` applies unchanged.
"""

import itertools
from typing import NamedTuple

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
    """``d = (V+2)(V+1) + L(V+1) + k(V+1)``: transitions (BOS, V content, EOS as prev), positions, prompt features."""
    return (vocab + 2) * (vocab + 1) + max_len * (vocab + 1) + n_features * (vocab + 1)


def make_logp(answers, prompt_features, vocab):
    """Build ``θ ↦ log π_θ(y|x) [P, Y]`` for the policy above over ``answers``, and its gather.

    The second function, ``(θ, prompts [B], answer ids [B, n]) ↦ log π_θ [B, n]``,
    scores only the sampled answers: the learner's per-step cost then scales with
    the batch, not with ``P·Y``.
    """
    n_tokens = vocab + 1
    bos = vocab + 1
    tokens = jnp.asarray(answers.tokens)
    max_len = tokens.shape[1]
    prev = jnp.concatenate([jnp.full((tokens.shape[0], 1), bos), tokens[:, :-1]], axis=1)  # [Y, L]
    emitted = jnp.arange(max_len)[None, :] < jnp.asarray(answers.length)[:, None]  # [Y, L]
    features = jnp.asarray(prompt_features)
    n_features = features.shape[1]
    sizes = ((vocab + 2) * n_tokens, max_len * n_tokens, n_features * n_tokens)

    def sequence_logp(theta, prompt_ids, answer_ids):  # ids of equal rank, broadcast against each other
        transition = theta[: sizes[0]].reshape(vocab + 2, n_tokens)
        position = theta[sizes[0]: sizes[0] + sizes[1]].reshape(max_len, n_tokens)
        prompt = features[prompt_ids] @ theta[sizes[0] + sizes[1]:].reshape(n_features, n_tokens)  # [..., V+1]
        position = position.reshape((1,) * answer_ids.ndim + position.shape)
        logits = transition[prev[answer_ids]] + position + prompt[..., None, :]  # [..., L, V+1]
        token_logp = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), tokens[answer_ids][..., None], axis=-1)
        return jnp.sum(jnp.where(emitted[answer_ids], token_logp[..., 0], 0.0), axis=-1)

    def logp(theta):
        # A token's distribution depends on (prompt, position, previous token) only: one log-softmax per such
        # context, gathered along every answer, is ~10x cheaper than a softmax per (prompt, answer, position).
        transition = theta[: sizes[0]].reshape(vocab + 2, n_tokens)
        position = theta[sizes[0]: sizes[0] + sizes[1]].reshape(max_len, n_tokens)
        prompt = features @ theta[sizes[0] + sizes[1]:].reshape(n_features, n_tokens)  # [P, V+1]
        context = jax.nn.log_softmax(
            transition[None, None] + position[None, :, None, :] + prompt[:, None, None, :], axis=-1)  # [P, L, V+2, V+1]
        token_logp = context[:, jnp.arange(max_len)[None, :], prev, tokens]  # [P, Y, L]
        return jnp.sum(jnp.where(emitted[None], token_logp, 0.0), axis=-1)

    return logp, sequence_logp


def first_token_reward(answers, targets, min_content=1):
    """Reward 1 iff the answer ends, has ≥ ``min_content`` content tokens and starts with the prompt's target: ``[P, Y]``.

    A long ``min_content`` puts the correct answers next to the length cap, so
    pushing them up also pushes toward truncation: the end-token collapse route.
    """
    ends = ~answers.truncated & (answers.length >= min_content + 1)
    hits = answers.tokens[None, :, 0] == np.asarray(targets)[:, None]
    return (hits & ends[None]).astype(np.float64)
