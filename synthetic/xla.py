"""``jax.jit`` with the XLA CPU options the synthetic sweeps run fastest under.

XLA's CPU backend hands elementwise ops and reductions to YNNPACK fusions. For
this engine's arrays, whose softmax axes hold 4 tokens, those fusions are slower
than XLA's own loops: turning them off made the default sweep 1.6× faster on
this project's 2-core CPU (``benchmarks/bench_sweep.py`` prints both). The
option exists only in recent XLA builds, so it is applied where the installed
one accepts it and the backend is a CPU; elsewhere this is plain ``jax.jit``.
The numbers do not depend on it beyond the last bits of float64 reductions.

:func:`use_compilation_cache` keeps compiled programs on disk, so a grid compiles once per machine, not once per
command.
"""

import functools
import os
from pathlib import Path

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


CACHE_ENV = "REPRO_XLA_CACHE"
"""Environment variable: the compilation cache's directory, or ``off``."""


def use_compilation_cache(directory=None):
    """Turn on JAX's persistent compilation cache and return its directory (None: off).

    XLA compiles the graded grid of ``repro sweep synthetic`` in about 7 s on 2 cores, a tenth of the whole sweep;
    from the cache it loads in 0.3 s (measured), so every later command with the same shapes skips it. The
    directory is ``directory``, else ``$REPRO_XLA_CACHE``, else ``$XDG_CACHE_HOME/staleness-repro/xla``
    (``~/.cache/…``); ``REPRO_XLA_CACHE=off`` keeps it off, and a directory JAX was already given (its own
    ``JAX_COMPILATION_CACHE_DIR``) is kept. Entries are keyed by the program, the compile options and the JAX
    version, so a stale entry is never loaded.
    """
    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return configured
    setting = directory or os.environ.get(CACHE_ENV)
    if setting == "off":
        return None
    path = Path(setting) if setting else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / \
        "staleness-repro" / "xla"
    jax.config.update("jax_compilation_cache_dir", str(path))
    return str(path)
