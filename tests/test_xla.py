"""The XLA settings of the synthetic engine: the persistent compilation cache."""

import math
import os
import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import sys, jax, jax.numpy as jnp
    from synthetic import xla
    print(xla.use_compilation_cache())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    print(float(xla.jit(lambda x: jnp.sin(x) * 2.0)(1.0)))
""")


def _child(tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("REPRO_XLA_CACHE", "JAX_COMPILATION_CACHE_DIR")}
    environ.update(env, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    done = subprocess.run([sys.executable, "-c", CHILD], env=environ, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_compiled_programs_land_in_the_cache_and_load_from_it(tmp_path):
    cache = tmp_path / "cache"
    first = _child(tmp_path, REPRO_XLA_CACHE=str(cache))
    assert first[0] == str(cache) and math.isclose(float(first[1]), 2 * math.sin(1.0), rel_tol=1e-6)
    entries = sorted(p.name for p in cache.iterdir())
    assert entries, "nothing was written to the cache"
    assert _child(tmp_path, REPRO_XLA_CACHE=str(cache)) == first
    assert sorted(p.name for p in cache.iterdir()) == entries, "the second run compiled again instead of loading"


def test_the_cache_defaults_to_the_user_cache_and_can_be_turned_off(tmp_path):
    assert _child(tmp_path)[0] == str(tmp_path / "xdg" / "staleness-repro" / "xla")
    assert _child(tmp_path, REPRO_XLA_CACHE="off")[0] == "None"
    assert _child(tmp_path, JAX_COMPILATION_CACHE_DIR=str(tmp_path / "own"))[0] == str(tmp_path / "own")
