"""Per-step measurements of THEORY.md §6 (and the diagnostics beside it) for one run.

All norms are Euclidean over the trainable parameters flattened into one vector
(§1). ``update_norm = ‖θ_{t+1} − θ_t‖ / η`` is the applied update ``u_t`` of (6)
without η, whatever the optimiser. A run whose loss or weights stop being
finite is *collapsed*: its step is recorded as ``nan_step`` and every metric,
reward included, is NaN from there on, which :mod:`theory.collapse` reads as a
divergence (collapsed to the end, never censored).
"""

import numpy as np
import torch

from theory.grpo import clip_fraction, effective_sample_size
from theory.metrics import cosine, l2_norm

PER_STEP = ("reward", "val_reward", "grad_cos", "drift", "stale_drift", "clip_frac", "ess", "kl_ref",
            "bias_norm", "bias_norm_lo", "bias_norm_hi", "update_norm", "raw_grad_cos", "max_neg_ratio", "staleness",
            "eta_scale")
"""Recorded every learner step (``val_reward`` and ``bias_norm`` with its interval every k steps, NaN between)."""


def flat_params(model):
    """The trainable parameters as one detached float32 vector θ."""
    return torch.cat([p.detach().reshape(-1).float() for p in model.parameters() if p.requires_grad])


def flat_grads(model):
    """The gradients of the trainable parameters as one float32 vector (0 where absent)."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                      for p in model.parameters() if p.requires_grad])


def ratio_stats(rho, rho_mask, adv, eps):
    """``clip_frac``, ``ess`` and the largest ratio on a negative-advantage sample, over the real ratios."""
    real = rho[rho_mask]
    negative = rho[rho_mask & (adv < 0).reshape(-1, *[1] * (rho.dim() - 1))]
    return {"clip_frac": float(clip_fraction(real, eps)), "ess": float(effective_sample_size(real)),
            "max_neg_ratio": float(negative.max()) if negative.numel() else float("nan")}


class Recorder:
    """Arrays of :data:`PER_STEP` over T steps, filled in step by step; NaN until written."""

    def __init__(self, steps):
        self.series = {name: np.full(steps, np.nan) for name in PER_STEP}
        self.nan_step = -1
        self.previous_update = None
        self.previous_grad = None

    def step(self, t, values):
        for name, value in values.items():
            self.series[name][t] = value

    def update(self, t, theta_before, theta_after, grad, eta):
        """Record the applied update of step t; returns False if the weights are no longer finite."""
        if not (torch.isfinite(theta_after).all() and torch.isfinite(grad).all()):
            return False
        u = (theta_after - theta_before) / eta
        values = {"update_norm": float(l2_norm(u))}
        if self.previous_update is not None:
            values["grad_cos"] = float(cosine(u, self.previous_update))
            values["raw_grad_cos"] = float(cosine(grad, self.previous_grad))
        self.step(t, values)
        self.previous_update, self.previous_grad = u, grad
        return True

    def collapse(self, t):
        """Mark the run collapsed at step t: every series NaN from t on (a diverged run, never censored)."""
        self.nan_step = t
        for series in self.series.values():
            series[t:] = np.nan
