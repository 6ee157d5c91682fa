"""Softmax bandit policies with binary verifiable rewards (THEORY.md §8).

* single prompt: K arms, tabular logits ``θ ∈ R^K``, ``π = softmax(θ)``;
* multi prompt, log-linear: P prompts, features ``φ(x, a) ∈ R^d``, shared
  ``θ ∈ R^d``, ``π(a|x) = softmax_a(φ(x, a)·θ)``.

Each returns ``log π_θ(a|x)`` as ``[P, K]`` so that :mod:`synthetic.exact`
treats every discrete policy alike.
"""

import jax
import jax.numpy as jnp


def softmax_logp(theta):
    """Single-prompt bandit: ``log softmax(θ)`` as a ``[1, K]`` table."""
    return jax.nn.log_softmax(theta)[None, :]


def loglinear_logp(theta, features):
    """Log-linear contextual bandit: ``log softmax_a(φ(x, a)·θ)``, features ``[P, K, d]`` → ``[P, K]``."""
    return jax.nn.log_softmax(jnp.einsum("pkd,d->pk", features, theta), axis=-1)
