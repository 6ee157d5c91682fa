"""The two-constraint learning-rate rule, docs/theory.md (36)–(38)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class SafeLearningRate:
    """The answer of (36)–(38) for one (τ, T)."""

    eta_max: float
    """``min(c_loc/τ, c_hor/T)``: the largest η both constraints allow."""
    binding: str
    """``"local"`` (η τ ≤ c_loc binds, so η_max ∝ 1/τ) or ``"horizon"`` (η T ≤ c_hor binds, η_max independent of τ)."""
    eta_local: float
    """``c_loc / τ``, the local constraint alone, η τ ≤ c_loc of (36)."""
    eta_horizon: float
    """``c_hor / T``, the horizon constraint alone, η T ≤ c_hor of (36)."""
    margin: float
    """``eta_slack / eta_max ≥ 1``: how far the constraint that does not bind is from binding."""
    c_loc: float
    c_hor: float
    tau: int
    horizon: int


def safe_learning_rate(tau, horizon, c_loc, c_hor):
    """Two-constraint rule (36)–(38): ``η ≤ min(c_loc/τ, c_hor/T)``.

    The horizon constraint binds when ``c_hor/T < c_loc/τ`` (38); ties count as
    local, the constraint the paper states first.

    >>> safe_learning_rate(tau=4, horizon=2000, c_loc=0.02, c_hor=4.0).binding
    'horizon'
    """
    for name, value in (("tau", tau), ("horizon", horizon), ("c_loc", c_loc), ("c_hor", c_hor)):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value!r}")
    eta_local, eta_horizon = c_loc / tau, c_hor / horizon
    binding = "horizon" if eta_horizon < eta_local else "local"
    eta_max = min(eta_local, eta_horizon)
    return SafeLearningRate(
        eta_max=eta_max,
        binding=binding,
        eta_local=eta_local,
        eta_horizon=eta_horizon,
        margin=max(eta_local, eta_horizon) / eta_max,
        c_loc=c_loc,
        c_hor=c_hor,
        tau=tau,
        horizon=horizon,
    )


def c_loc_from_radius(r_clip, U):
    """(32) as a constant: ``c_loc = r_clip / U`` (``U η τ ≤ r_clip``)."""
    return r_clip / U


def c_hor_from_radius(R, U):
    """(34) as a constant: ``c_hor = R / U`` (``t* ≈ c_hor / η``)."""
    return R / U
