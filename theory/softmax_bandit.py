"""Closed forms of docs/theory.md §8 for softmax bandits, derived with sympy, and the analytic constants they give.

Policy ``π(a|x) = softmax_a(φ(x, a)·θ)``; the tabular bandit is ``φ(x, a) = e_a``.
Two geometric numbers carry every bound:

* the score bound ``D = max_{x,a,b} ‖φ(x,a) − φ(x,b)‖₂`` (tabular: ``√2``; log-linear
  with ``max ‖φ‖₂ ≤ Φ``: ``D ≤ 2Φ``), since ``∇log π(a) = φ_a − E_π φ`` is a convex
  combination of the differences, and ``span_a(δ·φ_a) ≤ D ‖δ‖₂``;
* the log-ratio radius ``m ≥ max |log ρ|`` over the pairs of a region:
  ``|log ρ_a| ≤ span_a(δ·φ_a)``, ``δ = θ − β`` (tabular: ``≤ 2‖δ‖_∞``).

Each :func:`derivations` entry states a fact and checks it with sympy for K = 2
(a difference simplified to 0, or an inequality reduced to a sum of squares).
"""

import math

import numpy as np
import sympy as sp


def _softmax(logits):
    z = sum(sp.exp(v) for v in logits)
    return [sp.exp(v) / z for v in logits]


def _is_zero(expr):
    return sp.simplify(expr) == 0


def _grad_log_pi():
    t0, t1 = sp.symbols("theta0 theta1", real=True)
    pi = _softmax([t0, t1])
    residual = [sp.diff(sp.log(pi[0]), t) - (e - p) for t, e, p in zip((t0, t1), (1, 0), pi)]
    return all(_is_zero(r) for r in residual)


def _score_norm():
    q = sp.symbols("pi1", nonnegative=True)  # π = (1 − q, q); ‖e_0 − π‖² = 2q²
    norm2 = (1 - (1 - q)) ** 2 + q**2
    return _is_zero(norm2 - 2 * q**2) and sp.solve(sp.Eq(2 * q**2, 2), q) == [1]


def _advantage_extremes():
    n, s = sp.symbols("n S", positive=True)
    p = s / n
    std = sp.sqrt(p * (1 - p))
    a_right, a_wrong = (1 - p) / std, p / std  # |A| of a success, of a failure (δ = 0)
    right_ok = _is_zero(a_right**2 - (n - s) / s) and _is_zero((a_right**2).subs(s, 1) - (n - 1))
    wrong_ok = _is_zero(a_wrong**2 - s / (n - s)) and _is_zero((a_wrong**2).subs(s, n - 1) - (n - 1))
    sum_sq = s * a_right**2 + (n - s) * a_wrong**2
    sum_abs = s * a_right + (n - s) * a_wrong
    # Σ|A| = 2√(S(n−S)), and n² − 4S(n−S) = (n − 2S)² ≥ 0
    abs_ok = _is_zero(sp.radsimp(sum_abs**2) - 4 * s * (n - s)) and _is_zero(n**2 - 4 * s * (n - s) - (n - 2 * s) ** 2)
    return right_ok and wrong_ok and _is_zero(sum_sq - n) and abs_ok


def _ratio_bound():
    d0, d1 = sp.symbols("delta0 delta1", real=True)
    b0, b1 = sp.symbols("beta0 beta1", real=True)
    pi_beta = _softmax([b0, b1])
    pi_theta = _softmax([b0 + d0, b1 + d1])
    rho = pi_theta[0] / pi_beta[0]
    # ρ_0 = 1 / (π_β0 + π_β1 e^{δ1−δ0}): one over a convex combination of 1 and e^{δ1−δ0},
    # so ρ_0 lies between 1 and e^{δ0−δ1} and |log ρ_0| ≤ |δ0 − δ1| ≤ 2‖δ‖_∞
    return _is_zero(rho * (pi_beta[0] + pi_beta[1] * sp.exp(d1 - d0)) - 1)


def _ratio_gradient():
    t0, t1, b0, b1 = sp.symbols("theta0 theta1 beta0 beta1", real=True)
    pi_t, pi_b = _softmax([t0, t1]), _softmax([b0, b1])
    rho = pi_t[0] / pi_b[0]
    return all(_is_zero(sp.diff(rho, b) + rho * (e - p)) for b, e, p in zip((b0, b1), (1, 0), pi_b))


def _tv_rate():
    t0, t1, v0, v1, h = sp.symbols("theta0 theta1 v0 v1 h", real=True)
    pi = _softmax([t0, t1])
    moved = _softmax([t0 + h * v0, t1 + h * v1])
    mean_v = pi[0] * v0 + pi[1] * v1
    # d/dh π_a(θ + h v) at 0 = π_a (v_a − π·v): the TV rate is ½ Σ π_a |v_a − π·v|
    slopes_ok = all(_is_zero(sp.diff(m, h).subs(h, 0) - p * (v - mean_v)) for m, p, v in zip(moved, pi, (v0, v1)))
    # K = 2: both terms equal π0 π1 |v0 − v1|; π0 π1 = ¼ − (π0 − ½)² ≤ ¼ and 2‖v‖² − (v0 − v1)² = (v0 + v1)² ≥ 0,
    # so the rate is ≤ ¼ √2 = 1/(2√2) for ‖v‖₂ = 1
    q = sp.symbols("q", positive=True)
    terms_ok = _is_zero(pi[0] * (v0 - mean_v) - pi[0] * pi[1] * (v0 - v1))
    product_ok = _is_zero(sp.Rational(1, 4) - q * (1 - q) - (q - sp.Rational(1, 2)) ** 2)
    spread_ok = _is_zero(2 * (v0**2 + v1**2) - (v0 - v1) ** 2 - (v0 + v1) ** 2)
    return slopes_ok and terms_ok and product_ok and spread_ok


def _group_tv_rate():
    # K = 2, n = 2, π = (p, 1−p), ‖v‖₂ = 1: Σ_i (v_{y_i} − π·v) = (v0 − v1)(k − 2p), k ~ Bin(2, p), |v0 − v1| ≤ √2;
    # the rate ½ √2 E|k − 2p| must stay ≤ √n/(2√2) = ½ (by symmetry p ≤ ½)
    p = sp.symbols("p", nonnegative=True)
    mean_abs = (1 - p) ** 2 * 2 * p + 2 * p * (1 - p) * (1 - 2 * p) + p**2 * (2 - 2 * p)
    rate = sp.sqrt(2) / 2 * mean_abs
    return bool(sp.maximum(rate, p, sp.Interval(0, sp.Rational(1, 2))) <= sp.Rational(1, 2))


def _kl_gradient():
    t0, t1, r0, r1 = sp.symbols("theta0 theta1 ref0 ref1", real=True)
    pi, ref = _softmax([t0, t1]), _softmax([r0, r1])
    kl = sum(p * sp.log(p / q) for p, q in zip(pi, ref))
    u = (t0 - r0, t1 - r1)
    mean_u = pi[0] * u[0] + pi[1] * u[1]
    return all(_is_zero(sp.expand_log(sp.diff(kl, t) - p * (ui - mean_u), force=True))
               for t, p, ui in zip((t0, t1), pi, u))


def derivations():
    """The §8 closed forms as printable ``(statement, checked)`` pairs.

    ``checked`` is sympy's verdict for K = 2, or None for a bound composed from
    the checked lines before it (no separate symbolic check).
    """
    return [
        ("∇_θ log π(a) = e_a − π  (log-linear: φ_a − E_π φ)", _grad_log_pi()),
        ("‖e_a − π‖² = (1 − π_a)² + Σ_{b≠a} π_b² ≤ 2(1 − π_a)² ≤ 2, so ‖∇log π‖ ≤ D = √2", _score_norm()),
        ("binary rewards, S of n correct (δ = 0): |A_right| = √((n−S)/S), |A_wrong| = √(S/(n−S)), "
         "max |A_i| = √(n−1), Σ A_i² = n, Σ|A_i| = 2√(S(n−S)) ≤ n, so (1/n) Σ|A_i| ≤ 1 "
         "and the positive and negative parts are ≤ n/2 each", _advantage_extremes()),
        ("log ρ_a = δ_a − log Σ_b π_β(b) e^{δ_b} ∈ [δ_a − max δ, δ_a − min δ], so |log ρ| ≤ span δ ≤ 2‖θ − β‖_∞ "
         "(log-linear: ≤ span_a δ·φ_a ≤ D‖δ‖₂)", _ratio_bound()),
        ("∇_β ρ(a) = −ρ(a) (e_a − π_β)", _ratio_gradient()),
        ("d/dh TV(π_θ, π_{θ+hv}) at 0 = ½ Σ_a π_a |v_a − π·v| ≤ ½ √Var_π(v) ≤ ¼ span(v) ≤ 1/(2√2) for ‖v‖₂ = 1 "
         "(log-linear: D/4)", _tv_rate()),
        ("n i.i.d. samples: group TV rate ≤ ½ E|Σ_i (v_{y_i} − π·v)| ≤ ½ √(n Var_π v) ≤ √n/(2√2) "
         "(the cruder n/(2√2) of docs/theory.md §8 also holds); checked for K = n = 2", _group_tv_rate()),
        ("∇_θ KL(π_θ ‖ π_ref) = π ⊙ (u − π·u), u = θ − θ_ref; ‖·‖ ≤ √(max π · Var_π u) ≤ span(u)/2 "
         "(log-linear: Cov_π(u·φ, φ), ‖·‖ ≤ (D/√2) span(u·φ)/2)", _kl_gradient()),
        ("G ≤ (D/2)[min(e^m, 1+ε) + min(e^m, c)] + κ‖∇KL‖: only A > 0 terms with ρ ≤ 1+ε and A < 0 terms "
         "with ρ ≤ c (dual clip, else ∞) carry gradient; each sign carries (1/n)Σ|A| ≤ ½", None),
        ("L_D ≤ √n · D/4 (secant; group TV rate along a path)", None),
        ("L_β ≤ D² max[(e^m − 1)/m, 1{m > log(1+ε)}/log(1+ε)]: per sample |ψ'ρ − 1| ≤ e^{|log ρ|} − 1 unclipped, "
         "= 1 once clipped (needs |log ρ| > log(1+ε)), and ‖δ‖₂ ≥ |log ρ|/D", None),
    ]


def tabular_geometry(pair_radius_inf):
    """``(D, m)`` for the tabular bandit over pairs with ``‖θ − β‖_∞ ≤ pair_radius_inf``: ``(√2, 2·radius)``."""
    return math.sqrt(2.0), 2.0 * pair_radius_inf


def loglinear_geometry(features, pair_radius_inf):
    """``(D, m)`` for a log-linear bandit, features ``[P, K, d]``, pairs with ``‖θ − β‖_∞ ≤ pair_radius_inf``.

    ``D = max ‖φ_a − φ_b‖₂`` (≤ 2 max ‖φ‖₂) and ``m = radius · max ‖φ_a − φ_b‖₁``.
    """
    diff = np.asarray(features)[:, :, None, :] - np.asarray(features)[:, None, :, :]
    return float(np.max(np.linalg.norm(diff, axis=-1))), float(pair_radius_inf * np.max(np.abs(diff).sum(axis=-1)))


def analytic_kl_gradient(score_bound, ref_span):
    """``‖∇_θ KL(π_θ ‖ π_ref)‖ ≤ (D/√2) · span(u·φ)/2``, ``ref_span ≥ span_a((θ − θ_ref)·φ_a)``."""
    return score_bound / math.sqrt(2.0) * ref_span / 2.0


def analytic_G(n, eps, kappa, log_ratio, score_bound=math.sqrt(2.0), ref_span=0.0, dual_clip=None):
    """Upper bound on G (7) over pairs with ``|log ρ| ≤ m = log_ratio``; see :func:`derivations`."""
    del n  # (1/n) Σ|A_i| ≤ 1 for every n
    rho_max = math.exp(log_ratio)
    negative = rho_max if dual_clip is None else min(rho_max, dual_clip)
    return score_bound / 2.0 * (min(rho_max, 1.0 + eps) + negative) + kappa * analytic_kl_gradient(score_bound,
                                                                                                  ref_span)


def analytic_L_D(n, score_bound=math.sqrt(2.0)):
    """Upper bound on the secant L_D (9) for groups of n: ``√n · D/4`` (tabular ``√n/(2√2)``)."""
    return math.sqrt(n) * score_bound / 4.0


def analytic_L_beta(eps, log_ratio, score_bound=math.sqrt(2.0), dual_clip=None):
    """Upper bound on the secant L_β (10) over pairs with ``|log ρ| ≤ m = log_ratio``."""
    threshold = math.log(1.0 + eps) if dual_clip is None else min(math.log(1.0 + eps), math.log(dual_clip))
    smooth = math.expm1(log_ratio) / log_ratio if log_ratio > 0 else 1.0
    jump = 1.0 / threshold if log_ratio > threshold else 0.0
    return score_bound**2 * max(smooth, jump)
