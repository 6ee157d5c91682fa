"""Synthetic sweep speed: the default grid's wall time, and the vmapped grid against a per-run Python loop.

Run: ``python benchmarks/bench_sweep.py [--seeds 16] [--steps 2000] [--loop-runs 8]``.

The grid is issue 3's default: 5 τ × 8 η × 16 seeds × 2000 steps on the end-token
(autoregressive) task, SGD, standard clip, exact metrics every 50 steps. Measured
side by side in one run:

* the vmapped sweep as ``repro sweep`` runs it (:func:`synthetic.xla.jit`,
  Lemma 1's ``bias_bound`` recorded), the same without ``bias_bound``, and that
  one under plain ``jax.jit`` (XLA's YNNPACK CPU fusions on);
* a Python loop over the grid's runs calling the *same* simulator one run at a
  time (``jit(make_run)``, compiled once, compile time excluded), over a stated
  subset of the runs spread over every τ and η, its time scaled to the full grid.

Every line prints the machine load, since the CPU is shared.
"""

import argparse
import dataclasses
import os
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from synthetic import xla  # noqa: E402
from synthetic.simulate import make_run  # noqa: E402
from synthetic.sweep import DEFAULT_ETAS, SweepConfig, grid  # noqa: E402
from synthetic.tasks import make_task  # noqa: E402

TARGET_WALL_S = 60.0
TARGET_RATIO = 50.0


def _load():
    return "load avg " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def _timed(function, *args):
    start = time.perf_counter()
    jax.block_until_ready(function(*args))
    return time.perf_counter() - start


def bench_grid(config, jit):
    """Compile the grid with ``jit`` once, then run every τ: (compile seconds, run seconds)."""
    task = make_task(config.task, config.group, config.eps, config.kappa, config.dual_clip, config.seed)
    function = jit(grid(make_run(task, config.run_config())))
    etas, seeds = jnp.asarray(config.etas, dtype=float), jnp.asarray(config.seed + np.arange(config.seeds))
    start = time.perf_counter()
    compiled = function.lower(etas, config.taus[0], seeds).compile()
    compile_s = time.perf_counter() - start
    run_s = sum(_timed(compiled, etas, tau, seeds) for tau in config.taus)
    return compile_s, run_s


def bench_loop(config, n_runs):
    """Seconds per run of a Python loop calling the single-run function, over ``n_runs`` grid points."""
    task = make_task(config.task, config.group, config.eps, config.kappa, config.dual_clip, config.seed)
    run = xla.jit(make_run(task, config.run_config()))
    cells = [(tau, eta) for tau in config.taus for eta in config.etas]
    picks = [cells[i] for i in np.linspace(0, len(cells) - 1, n_runs).round().astype(int)]
    jax.block_until_ready(run(float(picks[0][1]), picks[0][0], config.seed))  # compile outside the timing
    start = time.perf_counter()
    for i, (tau, eta) in enumerate(picks):
        jax.block_until_ready(run(float(eta), tau, config.seed + i % config.seeds))
    return (time.perf_counter() - start) / n_runs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="autoregressive")
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--exact-every", type=int, default=50)
    parser.add_argument("--loop-runs", type=int, default=8, help="runs timed in the per-run loop (then scaled)")
    args = parser.parse_args()
    # the grid has 8 η: the 8 largest of the preset's
    config = SweepConfig(task=args.task, taus=(1, 2, 4, 8, 16), etas=DEFAULT_ETAS[args.task][-8:], seeds=args.seeds,
                         steps=args.steps, exact_every=args.exact_every)
    runs = len(config.taus) * len(config.etas) * config.seeds
    print(f"grid: {len(config.taus)} τ × {len(config.etas)} η × {config.seeds} seeds × {config.steps} steps "
          f"= {runs} runs on {config.task}; {jax.devices()[0].platform}; {_load()}")
    print(f"config: {dataclasses.asdict(config)}")

    compile_s, grid_s = bench_grid(config, xla.jit)
    total = compile_s + grid_s
    print(f"vmapped sweep ({xla.compiler_options() or 'no XLA options'}): compile {compile_s:.1f} s + run "
          f"{grid_s:.1f} s = {total:.1f} s ({'meets' if total <= TARGET_WALL_S else 'misses'} the "
          f"{TARGET_WALL_S:.0f} s target); {_load()}")
    bare = dataclasses.replace(config, lemma1=False)
    bare_compile_s, bare_s = bench_grid(bare, xla.jit)
    print(f"the same without Lemma 1's bias_bound (--no-lemma1): compile {bare_compile_s:.1f} s + run {bare_s:.1f} s "
          f"= {bare_compile_s + bare_s:.1f} s ({'meets' if bare_compile_s + bare_s <= TARGET_WALL_S else 'misses'} "
          f"the target); bias_bound costs {grid_s / bare_s:.2f}× the run; {_load()}")
    plain_compile_s, plain_s = bench_grid(bare, jax.jit)
    print(f"that one under plain jax.jit: compile {plain_compile_s:.1f} s + run {plain_s:.1f} s; "
          f"ratio plain / ours {plain_s / bare_s:.2f}× on run time; {_load()}")

    per_run = bench_loop(config, args.loop_runs)
    loop_s = per_run * runs
    print(f"per-run loop: {per_run:.3f} s/run measured on {args.loop_runs} runs, scaled to {runs} runs = "
          f"{loop_s:.0f} s (compile excluded); {_load()}")
    print(f"ratio loop / vmapped: {loop_s / grid_s:.2f}× on run time, {loop_s / total:.2f}× with the sweep's compile "
          f"(target ≥ {TARGET_RATIO:.0f}×)")


if __name__ == "__main__":
    main()
