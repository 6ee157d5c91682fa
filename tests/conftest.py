"""Test-wide settings: offline hubs, strict JAX ranks, 64-bit JAX, deterministic torch."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("REPRO_XLA_CACHE", "off")  # no compiled programs left in the user's cache by the tests

import jax  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_enable_x64", True)

import pytest  # noqa: E402

import paper_repro  # noqa: E402


@pytest.fixture
def repro(capsys):
    """Run ``repro ARGS`` in-process; return (exit code, stdout, stderr)."""

    def run(*args):
        try:
            paper_repro.main([str(a) for a in args])
        except SystemExit as done:
            code = done.code or 0
        else:
            code = 0
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def counted(monkeypatch):
    """τ values the synthetic grid function computes from now on (a list that grows as sweeps run)."""
    from synthetic import sweep

    computed = []
    sweep_function = sweep.sweep_function

    def counting(config):
        function = sweep_function(config)
        return lambda etas, tau, seeds: computed.append(tau) or function(etas, tau, seeds)

    monkeypatch.setattr(sweep, "sweep_function", counting)
    return computed
