"""Synthetic sweep throughput: the default grid in run-steps per second, and the share of run time the probes take.

Run: ``python benchmarks/bench_sweep.py [--task graded] [--seeds 32] [--steps 2000] [--exact-every 50] [--repeats 2]``.

The grid is issue 11's: 5 τ × 8 η × 32 seeds × 2000 steps (the 8 η of the task's preset), SGD, the preset's
pipeline and update clip, both bias bounds recorded at every probe (every 50 steps). Measured side by side in one
run, each compiled once (compile time printed apart) and timed ``--repeats`` times interleaved, the fastest
counting (the same variant varies by ±20 % between runs on a shared 2-core machine):

* the sweep as ``repro sweep synthetic`` runs it, in both learner precisions (float64, float32);
* the same without the Lemma 1 terms (``--no-lemma1``: only the exact ``bias_norm`` and the other probes) and
  with one probe per run (``exact_every = steps``), so the fraction of run time spent in the exact-metric and
  Lemma 1 evaluations is ``1 − t(one probe)/t(sweep)`` and that of the Lemma 1 terms alone
  ``1 − t(no Lemma 1)/t(sweep)``.

Goal: the whole grid with Lemma 1 in ≤ 60 s on 2 cores. Every line prints the machine load: the CPU is shared,
so compare ratios taken in one run, not times across runs.

Measured 2026-12-02 with nothing else running (load avg 1.8: XLA's CPU runtime keeps both cores partly busy with
one program, 180 % CPU): the float32 sweep compile 9.6 s + run 74.6 s = 84.2 s (34,327 run-steps/s; misses
60 s), float64 122.1 s (1.51× slower), without the Lemma 1 terms 68.8 s, one probe per run 60.4 s: probes 30 %
of run time, Lemma 1 terms 17 %. The previous engine measured 100.8 s (9.3 s + 91.5 s, 27,971 run-steps/s): the
run is 1.23× faster from a group's prompt logits computed once in the batch gradient and the per-step train
success visiting only the train prompts. Running the seeds as two slices at once was slower (0.8×: one program
already keeps both cores busy).

Then the probes, each change timed against the previous engine interleaved in one process (process CPU time of the
probe of 256 runs): logp's selector product over the 40 reachable contexts instead of all 80, 1.12×; every probe
metric over the prompts it weighs only (val_reward the 16 held-out ones, the rest the 48 train ones), 1.28×. On
the issue's grid, each τ old and new engine alternately, one pass each with another job on the cores (load avg
2.7–3.8): the run 1.11× faster, every learner metric bit for bit unchanged and every verdict of the analysis the
same. Rerun 16:28–16:40 with nothing else on the machine (load avg 0.9 at the start, 1.8 at the end), on a
machine then about 1.25× slower than in the morning (compile 12.0 s against 9.6 s, the float64 run 139.9 s against
≈ 113 s): the float32 sweep compile 12.0 s + run 89.6 s = 101.6 s (28,558 run-steps/s; misses 60 s), float64
151.8 s, without the Lemma 1 terms run 83.4 s, one probe per run run 77.3 s: **probes 13.8 % of run time (30 %
before), Lemma 1 terms 7.0 % (17 %)**. The run with a single probe per run is the learner's floor: the probes
alone cannot bring the grid under 60 s.

Evening 19:06–19:16, idle, the machine fast again: float32 sweep compile 7.2 s + run 64.4 s = 71.5 s (39,781
run-steps/s; misses 60 s), float64 109.4 s, without the Lemma 1 terms 60.3 s, one probe per run 55.5 s (meets): the
learner alone now fits, the probes (25 % of run time that evening) do not. Then the clipped term's derivative in
closed form (``theory.grpo.clipped_slopes``; a probe of 256 runs 120 → 97 ms, G's bound 31 → 10 ms): the float32
grid alternating with the previous engine, one process each, run 63.6 / 70.4 s old against 61.7 / 64.7 s new.
Later that evening, the per-step success from one context table (``benchmarks/profile_sweep.py`` found it): 21:56
76.2 s (7.7 s + 68.5 s), one probe per run 56.3 s of run, the compile from the persistent cache 3.2 s; 22:19, a slow
spell, 83.6 s (8.2 s + 75.4 s), float64 146.9 s (21:11, previous engine: 73.1 s, one probe per run 44.1 s).

2026-12-03 02:35, engine revision 2 (the batch's log-probs from its prompts' context tables, docs/substrate.md),
idle machine: **float32 sweep compile 6.0 s + run 36.8 s = 42.8 s (69,626 run-steps/s; meets 60 s)**, float64
71.3 s, without the Lemma 1 terms 32.0 s of run, one probe per run 25.9 s: the probes take 30 % of run time
(10.9 s; the learner got 1.8× faster, the probes did not), the Lemma 1 terms 13 %; compiled again from the
persistent cache 1.9 s.
"""

import argparse
import dataclasses
import os
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from synthetic import xla  # noqa: E402
from synthetic.sweep import SweepConfig, compiled_grid  # noqa: E402

TARGET_WALL_S = 60.0


def _load():
    return "load avg " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def compile_grid(config):
    """``(compile seconds, run)``: the grid compiled once; ``run()`` runs every τ and returns its seconds."""
    function, task = compiled_grid(config.run_config()), config.make_task()
    etas, seeds = jnp.asarray(config.etas, dtype=float), jnp.asarray(config.seed + np.arange(config.seeds))
    start = time.perf_counter()
    compiled = function.lower(task, etas, config.taus[0], seeds).compile()
    compile_s = time.perf_counter() - start

    def run():
        start = time.perf_counter()
        for tau in config.taus:
            jax.block_until_ready(compiled(task, etas, tau, seeds))
        return time.perf_counter() - start

    return compile_s, run


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="graded")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--exact-every", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs per variant; the fastest counts")
    args = parser.parse_args()
    preset = SweepConfig.preset(args.task)
    config = dataclasses.replace(preset, taus=(1, 2, 4, 8, 16), etas=preset.etas[-8:], seeds=args.seeds,
                                 steps=args.steps, exact_every=args.exact_every)
    run_steps = len(config.taus) * len(config.etas) * config.seeds * config.steps
    print(f"grid: {len(config.taus)} τ × {len(config.etas)} η × {config.seeds} seeds × {config.steps} steps "
          f"= {run_steps:,} run-steps on {config.task}; {jax.devices()[0].platform}, "
          f"{xla.compiler_options() or 'no XLA options'}; {_load()}")
    print(f"config: {dataclasses.asdict(config)}")
    cache = xla.use_compilation_cache(tempfile.mkdtemp(prefix="bench-sweep-xla-"))  # empty: every compile is cold
    variants = {"sweep, float64 learner": {"learner_dtype": "float64"},
                "sweep, float32 learner": {"learner_dtype": "float32"},
                "no Lemma 1 terms, float32": {"learner_dtype": "float32", "lemma1": False},
                "one probe per run, float32": {"learner_dtype": "float32", "exact_every": config.steps}}
    compiled = {label: compile_grid(dataclasses.replace(config, **changes)) for label, changes in variants.items()}
    runs = {label: [] for label in variants}
    for _ in range(args.repeats):  # interleaved, so a slow spell of the shared CPU hits every variant alike
        for label, (_, run) in compiled.items():
            runs[label].append(run())
            print(f"  {label}: {runs[label][-1]:.1f} s", flush=True)
    times = {}
    for label, (compile_s, _) in compiled.items():
        run_s = times[label] = min(runs[label])
        verdict = "meets" if compile_s + run_s <= TARGET_WALL_S else "misses"
        print(f"{label:30s} compile {compile_s:6.1f} s + run {run_s:7.1f} s = {compile_s + run_s:7.1f} s "
              f"({verdict} {TARGET_WALL_S:.0f} s); {run_steps / run_s:,.0f} run-steps/s; runs "
              + ", ".join(f"{r:.1f}" for r in runs[label]) + f" s; {_load()}")
    full = times["sweep, float32 learner"]
    jax.clear_caches()  # as a new process would start: trace and lower again, then load the program from disk
    warm_s, _ = compile_grid(dataclasses.replace(config, **variants["sweep, float32 learner"]))
    print(f"float32 sweep compiled again, loaded from the persistent compilation cache ({cache}): {warm_s:.1f} s "
          f"(cold {compiled['sweep, float32 learner'][0]:.1f} s); run + that "
          f"{full + warm_s:.1f} s ({'meets' if full + warm_s <= TARGET_WALL_S else 'misses'} {TARGET_WALL_S:.0f} s)")
    print(f"float32 / float64 learner speed-up: {times['sweep, float64 learner'] / full:.2f}×")
    print(f"fraction of run time in the probes (exact metrics and Lemma 1): "
          f"{1 - times['one probe per run, float32'] / full:.3f}; in the Lemma 1 terms alone: "
          f"{1 - times['no Lemma 1 terms, float32'] / full:.3f}")


if __name__ == "__main__":
    main()
