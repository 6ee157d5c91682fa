"""``jax.jit`` with the XLA CPU options the synthetic sweeps run fastest under.

XLA's CPU backend hands elementwise ops and reductions to YNNPACK fusions. For
this engine's arrays, whose softmax axes hold 4 tokens, those fusions are slower
than XLA's own loops: turning them off made the default sweep 1.6× faster on
this project's 2-core CPU (``benchmarks/bench_sweep.py`` prints both). The
option exists only in recent XLA builds, so it is applied where the installed
one accepts it and the backend is a CPU; elsewhere this is plain ``jax.jit``.
The numbers do not depend on it beyond the last bits of float64 reductions.
"""

import functools

import jax
import jax.numpy as jnp

CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}
"""XLA debug options for CPU compiles: no YNNPACK fusions."""


@functools.cache
def compiler_options():
    """:data:`CPU_OPTIONS` if this JAX and XLA accept them on the default backend, else ``{}``."""
    if jax.default_backend() != "cpu":
        return {}
    try:
        jax.jit(jnp.sin, compiler_options=CPU_OPTIONS)(0.0)
    except (TypeError, ValueError, RuntimeError):  # an older jit without the keyword, or an XLA without the option
        return {}
    return dict(CPU_OPTIONS)


def jit(function, **kwargs):
    """``jax.jit(function, **kwargs)`` with :func:`compiler_options`."""
    options = compiler_options()
    return jax.jit(function, compiler_options=options, **kwargs) if options else jax.jit(function, **kwargs)
