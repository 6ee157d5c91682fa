"""Autoregressive log-linear policy over short answers with an end token (docs/substrate.md).

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
lengthens every answer at once, which is how the earlier end-token toy
collapsed (docs/substrate.md). Every answer is enumerated, so ``log π_θ(y|x)``
is an exact ``[P, Y]`` table like the bandits' and :mod:`synthetic.exact`
applies unchanged. The policy is a pytree, so the engine takes it as an argument.
"""

import dataclasses
import itertools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def along_tokens(function, x):
    """``function``, an op along the last (token) axis, on a ``[rows, V+1]`` view of ``x``: XLA's CPU loops run
    exp 2–6× slower on arrays of rank ≥ 4 (vmap adds one; measured), and the values do not change."""
    return function(x.reshape(-1, x.shape[-1])).reshape(x.shape)


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


STATIC = dict(metadata=dict(static=True))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class EndTokenPolicy:
    """The end-token policy over an enumerated answer set (a pytree: its tables are leaves, its sizes static)."""

    features: jax.Array
    """``f(x) [P, k]``: fixed prompt features."""
    offsets: jax.Array
    """``e_j [L, 1]``: fixed end offsets."""
    selector: jax.Array
    """``[Y, K]`` 0/1: which entries (position, previous token, token) of the :func:`reachable` contexts answer y
    uses."""
    first_id: jax.Array
    """``[L+1]`` id of the first answer with m content tokens."""
    truncated: jax.Array
    """``[Y]`` bool: the answer never ends."""
    vocab: int = dataclasses.field(**STATIC)
    max_len: int = dataclasses.field(**STATIC)

    def on_prompts(self, prompt_ids):
        """The same policy on the prompts ``prompt_ids`` alone (their features)."""
        return dataclasses.replace(self, features=self.features[prompt_ids])

    def blocks(self, theta):
        """``T [V+2, V+1]``, ``Q [L, V+1]`` (end column e_j) and ``W [k, V+1]`` (end column 0)."""
        vocab, max_len, n_tokens = self.vocab, self.max_len, self.vocab + 1
        sizes = ((vocab + 2) * n_tokens, max_len * vocab)
        transition = theta[: sizes[0]].reshape(vocab + 2, n_tokens)
        position = jnp.concatenate([theta[sizes[0]: sizes[0] + sizes[1]].reshape(max_len, vocab), self.offsets],
                                   axis=1)
        prompt = jnp.concatenate([theta[sizes[0] + sizes[1]:].reshape(self.features.shape[1], vocab),
                                  jnp.zeros((self.features.shape[1], 1), theta.dtype)], axis=1)
        return transition, position, prompt

    def context_logits(self, theta):
        """Next-token logits of every (prompt, position, previous token): ``[P, L, V+2, V+1]``."""
        transition, position, weights = self.blocks(theta)
        prompt = self.features @ weights  # [P, V+1]
        return transition[None, None] + position[None, :, None, :] + prompt[:, None, None, :]

    def logp(self, theta):
        """``log π_θ(y|x)``, the exact ``[P, Y]`` table."""
        context = self.reachable_logp(theta)  # every next-token log-prob answers use
        return context.reshape(context.shape[0], -1) @ self.selector.T

    def reachable_logits(self, theta, prompt_ids=None):
        """Next-token logits of the contexts answers reach, ``[P, C, V+1]`` (or of ``prompt_ids``): the rows of
        :meth:`context_logits` that :func:`reachable` keeps (C = 1 + (L−1)V: position 0 after BOS, then each later
        position after each content token), built from their blocks without the full table."""
        vocab = self.vocab
        transition, position, weights = self.blocks(theta)
        prompt = (self.features if prompt_ids is None else self.features[prompt_ids]) @ weights  # [P, V+1]
        first = transition[vocab + 1][None] + position[0][None] + prompt
        later = transition[None, None, :vocab] + position[None, 1:, None] + prompt[:, None, None]  # [P, L−1, V, V+1]
        return jnp.concatenate([first[:, None], later.reshape(prompt.shape[0], -1, vocab + 1)], axis=1)

    def reachable_logp(self, theta, prompt_ids=None):
        """``log π_θ(v | x, j, prev)`` of the contexts answers reach, ``[P, C, V+1]`` (or of ``prompt_ids``):
        ``log π_θ(y|x)`` is the sum of the entries ``selector[y]`` picks from its flattened ``[P, C·(V+1)]``."""
        return along_tokens(jax.nn.log_softmax, self.reachable_logits(theta, prompt_ids))

    def truncation(self, theta, prompt_ids=None):
        """``P(no EOS within L tokens | x)`` ``[P]`` (or of ``prompt_ids``), forward over positions through the
        reachable contexts only (BOS first, then a content token): no table of answers."""
        return self.never_ends(along_tokens(jax.nn.softmax, self.reachable_logits(theta, prompt_ids)))

    def never_ends(self, probs):
        """``P(no EOS within L tokens | x)`` ``[P]`` from the reachable contexts' next-token probabilities
        ``[P, C, V+1]``: the probability of being at each content token, carried forward position by position."""
        vocab = self.vocab
        running = probs[:, 0, :vocab]  # at a content token, not ended yet
        content = probs[:, 1:, :vocab].reshape(probs.shape[0], self.max_len - 1, vocab, vocab)
        for j in range(self.max_len - 1):  # a sum over V previous tokens, not a batched dot: tiny dots are slow on CPU
            running = jnp.sum(running[:, :, None] * content[:, j], axis=1)
        return jnp.sum(running, axis=1)

    def score_norm(self, theta):
        """``‖∇_θ log π_θ(y|x)‖ [P, Y]`` in closed form, down the tree of answer prefixes: no ``[P, Y, d]``
        Jacobian, and no per-answer gather of context rows."""
        # ∇ log π(y|x) = Σ_j ∂logits_j^T δ_j with δ_j = e_{y_j} − π(·|x, j, y_{j−1}): δ_j lands on T's row y_{j−1},
        # on Q's row j and, through f(x), on W (Q and W: content columns only). A prefix's δ_j depend on its last
        # token only, so level j holds every prefix of j content tokens (base-V digits, the answers' order) with
        # what its answers share: the T rows of the content tokens (rows), Σ_j δ_j's content (content) and the
        # squared norm of the rest (the BOS row and the Q rows)
        vocab, n_tokens = self.vocab, self.vocab + 1
        probs = along_tokens(jax.nn.softmax, self.reachable_logits(theta))  # [P, C, V+1]
        n_prompts, dtype = probs.shape[0], probs.dtype
        feature_sq = jnp.sum(self.features * self.features, axis=-1)[:, None]
        eye = jnp.eye(n_tokens, dtype=dtype)
        content = jnp.zeros((n_prompts, 1, vocab), dtype)
        squared = []
        for j in range(self.max_len):
            if j == 0:  # the BOS row serves position 0 alone: its share of the norm is final at once
                delta = eye[None, None] - probs[:, 0][:, None, None, :]  # [P, prefix, next token, V+1]
                rest = jnp.sum(delta * delta, axis=-1)
                rows = jnp.zeros((n_prompts, 1, n_tokens, vocab, n_tokens), dtype)
            else:
                n_prefix = vocab**j
                after = probs[:, None, 1 + (j - 1) * vocab: 1 + j * vocab]  # [P, 1, V, V+1]: j after each token
                row = jnp.broadcast_to(after, (n_prompts, n_prefix // vocab, vocab, n_tokens))
                delta = eye[None, None] - row.reshape(n_prompts, n_prefix, 1, n_tokens)
                last = jnp.asarray(np.arange(n_prefix)[:, None] % vocab == np.arange(vocab), dtype)  # [prefix, V]
                rows = rows[:, :, None] + last[None, :, None, :, None] * delta[:, :, :, None, :]
                rest = rest[..., None]
            content = content[:, :, None] + delta[..., :vocab]
            rest = rest + jnp.sum(delta[..., :vocab] ** 2, axis=-1)
            total = (jnp.sum(rows * rows, axis=(-2, -1)) + rest
                     + feature_sq[..., None] * jnp.sum(content * content, axis=-1))
            squared.append(total[..., vocab])  # the prefixes that end here
            rows, content, rest = (x[:, :, :vocab].reshape(n_prompts, vocab ** (j + 1), *x.shape[3:])
                                   for x in (rows, content, rest))
        squared.append(jnp.sum(rows * rows, axis=(-2, -1)) + rest + feature_sq * jnp.sum(content * content, axis=-1))
        return jnp.sqrt(jnp.concatenate(squared, axis=1))

    def sequence_logp(self, theta, prompt_ids, answer_ids):
        """``log π_θ`` of (prompt, answer) id arrays of equal rank, broadcast against each other: only those
        answers' prompts, so the learner's per-step cost scales with the batch, not with ``P·Y``. Each prompt id's
        reachable contexts are computed once (a group's ``[B, 1]`` against its ``[B, n]`` answers: once per group)."""
        table = self.reachable_logp(theta, prompt_ids.reshape(-1))
        return self.answer_logp(table.reshape(*prompt_ids.shape, -1), answer_ids)

    def answer_logp(self, table, answer_ids):
        """``log π(y|x)`` of ``answer_ids`` from their prompts' flattened reachable log-probs ``table [..., K]``
        (K = C·(V+1); leading axes broadcast against the ids'): each answer's selector row dotted with its table.
        A dot has a dense backward pass, where a gather of each answer's tokens transposes into scatter-adds, and
        is faster than a product summed over K (which XLA's CPU splits into windows of 32): value and gradient of a
        batch of 256 runs 2.4× faster than a gather of each answer's tokens, the product-sum 1.4× (measured)."""
        return jnp.matmul(self.selector[answer_ids][..., None, :], table[..., :, None])[..., 0, 0]

    def sample(self, theta, prompt_ids, key, n):
        """``n`` answers per prompt in ``prompt_ids [B]``, token by token as a language model samples: their ids
        and log-probs ``[B, n]`` (the latter as :meth:`sequence_logp` computes them, so ρ = 1 exactly at θ = β)."""
        vocab = self.vocab
        table = self.reachable_logp(theta, prompt_ids)  # [B, C, V+1]: every context an answer can reach
        contexts, shape = table.shape[1], (prompt_ids.shape[0], n)
        # each context's next-token CDF once, [B·C, V+1] (a flat view, as in along_tokens), not once per answer
        cdf = jnp.cumsum(jnp.exp(table).reshape(-1, vocab + 1), axis=-1)
        first = jnp.repeat(jnp.arange(shape[0]) * contexts, n)  # [B·n]: each answer's group's first context
        context, ended = first, jnp.zeros(first.shape, bool)
        digits, count = jnp.zeros(first.shape, int), jnp.zeros(first.shape, int)
        # inverse CDF per token: one uniform per (answer, position), the cheapest draw on CPU
        uniforms = jax.random.uniform(key, (self.max_len, *shape, 1), dtype=theta.dtype).reshape(self.max_len, -1, 1)
        for j in range(self.max_len):
            token = jnp.minimum(jnp.sum(cdf[context] < uniforms[j], axis=-1), vocab)
            content = ~ended & (token < vocab)
            digits = jnp.where(content, digits * vocab + token, digits)
            count = count + content
            ended = ended | (token == vocab)
            # position j + 1 after content token v is context 1 + j·V + v (an ended answer's rows no longer count)
            context = first + 1 + j * vocab + jnp.where(ended, 0, token)
        # answers are enumerated by content length m, then as base-V numbers: id = Σ_{k<m} V^k + digits
        answers = (self.first_id[count] + digits).reshape(shape)
        return answers, self.answer_logp(table.reshape(shape[0], 1, -1), answers)


def reachable(context, vocab):
    """The rows ``[P, 1 + (L−1)V, V+1]`` of a context table ``[P, L, V+2, V+1]`` that answers reach: position 0
    after BOS, every later position after a content token (never after BOS or EOS): the selector's columns, the
    rows :meth:`EndTokenPolicy.reachable_logits` builds from θ. Half the table's rows, so half the selector product
    of :meth:`EndTokenPolicy.logp` (and of each backward pass through it)."""
    n_prompts, max_len = context.shape[:2]
    later = context[:, 1:, :vocab].reshape(n_prompts, (max_len - 1) * vocab, vocab + 1)
    return jnp.concatenate([context[:, :1, vocab + 1], later], axis=1)


def make_policy(answers, prompt_features, vocab, end_offsets):
    """The :class:`EndTokenPolicy` over ``answers``; ``end_offsets`` are the fixed ``e_j``, one per position."""
    n_tokens, bos = vocab + 1, vocab + 1
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
    if selector.sum() != np.asarray(reachable(selector, vocab)).sum():
        raise ValueError("an answer uses a context that reachable() leaves out")
    return EndTokenPolicy(
        features=jnp.asarray(prompt_features, dtype=float),
        offsets=jnp.asarray(end_offsets, dtype=float).reshape(max_len, 1),
        selector=jnp.asarray(reachable(selector, vocab).reshape(n_answers, -1)),
        first_id=jnp.asarray(np.cumsum([0] + [vocab**m for m in range(max_len)])),
        truncated=jnp.asarray(answers.truncated),
        vocab=vocab,
        max_len=max_len,
    )
