"""The bias bound and the drift bounds, docs/theory.md §4–5, as scalar formulas.

Each function is the right-hand side of one numbered inequality; arguments are
named after the symbols (G, U, L_D, L_β, η, τ, t, R). They accept floats or
arrays (broadcasting), so the same call draws a bound line in a figure.
"""


def lemma1_constant(G, L_D, L_beta):
    """Lemma 1: ``C_b = 2 G L_D + L_β``, so that ``‖b_t‖ ≤ C_b ‖θ_t − β_t‖``."""
    return 2.0 * G * L_D + L_beta


def split_bound(G, tv, gap):
    """Either split of the bias at one pair: ``‖b‖ ≤ 2 G · TV(D_β, D_θ) + gap`` — Lemma 1 with
    ``(G, gap) = (sup‖∇ℓ(θ; β, ·)‖, ‖E_{D_θ}[∇ℓ(θ;β) − ∇ℓ(θ;θ)]‖)``, the other split with
    ``(sup‖∇ℓ(θ; θ, ·)‖, ‖E_{D_β}[∇ℓ(θ;β) − ∇ℓ(θ;θ)]‖)`` (docs/substrate.md)."""
    return 2.0 * G * tv + gap


def bias_bound(C_b, stale_drift):
    """Lemma 1: ``‖b_t‖ ≤ C_b ‖θ_t − β_t‖`` (``stale_drift = ‖θ_t − β_t‖``)."""
    return C_b * stale_drift


def stale_drift_bound(U, eta, tau):
    """(25): ``‖θ_t − θ_{t−τ_t}‖ ≤ U η τ``."""
    return U * eta * tau


def theorem1_bound(C_b, U, eta, tau):
    """Theorem 1: ``‖b_t‖ ≤ C_b U η τ`` — the staleness bias is O(τη)."""
    return C_b * U * eta * tau


def step_perturbation_bound(C_b, U, eta, tau):
    """(29): staleness perturbation of one step, ``η ‖b_t‖ ≤ C_b U η² τ``."""
    return C_b * U * eta**2 * tau


def within_local_region(eta, tau, c_loc):
    """(30): the single-step safe region ``η τ ≤ c_loc``."""
    return eta * tau <= c_loc


def local_stale_condition(U, eta, tau, r_clip):
    """(32): the clipped signal stays non-degenerate while ``U η τ ≤ r_clip``."""
    return U * eta * tau <= r_clip


def horizon_drift_bound(U, eta, t):
    """(33): ``‖θ_t − θ_0‖ ≤ U η t``."""
    return U * eta * t


def collapse_step_lower_bound(R, U, eta):
    """Theorem 2 (34): leaving a validity region of radius R takes ``t* ≥ R / (U η)``."""
    return R / (U * eta)


def collapse_sync(t_star, tau):
    """(35): weight-sync index of a collapse, ``k* = ⌊t* / τ⌋``."""
    return t_star // tau


def mean_stale_drift_bound(U_2, eta, tau):
    """Appendix A (40): with ``E‖u_t‖² ≤ U_2²``, ``E‖θ_t − θ_{t−τ_t}‖ ≤ η τ U_2``."""
    return eta * tau * U_2
