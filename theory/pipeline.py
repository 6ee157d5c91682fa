"""The rollout pipeline of docs/theory.md §3 and the per-step formulas both engines share.

Every function works on Python numbers and on numpy, JAX (also traced) and torch
arrays alike, so ``synthetic/``, ``llm/`` and the TRL callback compute the lag,
the behaviour step, the slice a step consumes, the ESS-scaled η and the exact
per-prompt KL with one definition.
"""

from array_api_compat import array_namespace, is_array_api_obj


def lag(t, tau):
    """τ_t = t mod τ (11): learner steps since the weights that sampled step t's batch."""
    return t % tau


def behaviour_step(t, tau):
    """t − τ_t (12): the learner step whose weights β_t = θ_{t−τ_t} sampled step t's batch."""
    return t - t % tau


def is_sync(t, tau):
    """Whether step t starts a rollout batch (a weight sync, τ_t = 0) (11)."""
    return t % tau == 0


def slice_of(t, tau):
    """Which of the τ disjoint slices step t consumes under ``reuse = slices`` (11): slice τ_t."""
    return t % tau


def in_slice(group, t, tau):
    """Whether group ``group`` of a batch belongs to step t's slice (group b is in slice b mod τ) (11)."""
    return group % tau == slice_of(t, tau)


def ess_scaled_eta(eta, ess, ess_base):
    """η_t = η·min(1, ess/ess_base), the VCPO-style learning rate; ``ess_base`` None: η itself."""
    if ess_base is None:
        return eta
    scale = ess / ess_base
    if not is_array_api_obj(scale):
        return eta * min(1.0, scale)
    return eta * array_namespace(scale).clip(scale, max=1.0)


def per_prompt_kl(logp_theta, logp_ref):
    """KL(π_θ(·|x) ‖ π_ref(·|x)) = Σ_y π_θ(y|x)(log π_θ − log π_ref), summed over the last axis (3)."""
    xp = array_namespace(logp_theta, logp_ref)
    return xp.sum(xp.exp(logp_theta) * (logp_theta - logp_ref), axis=-1)
