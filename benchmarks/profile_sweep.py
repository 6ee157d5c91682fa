"""Where a synthetic sweep's time goes: XLA's own per-kernel trace of one compiled grid call.

Run: ``python benchmarks/profile_sweep.py [--task graded] [--seeds 32] [--steps 200] [--exact-every 50] [--tau 4]
[--top 30]``.

Compiles the grid of ``repro sweep synthetic`` (the task's preset, float32 learner), runs it once to warm up, then
once under ``jax.profiler`` and prints the kernels that took the most time, each with how often it ran and the JAX
operation it came from (``op_name`` of the compiled HLO): kernels that ran once per learner step belong to the
learner, the others to the probes and the set-up. Kernel times of the two cores add up, so their sum exceeds the
wall time. This is how the η-batched key (every η drawing its own random numbers) and the success's gathered
logits were found (docs/substrate.md).
"""

import argparse
import collections
import dataclasses
import glob
import gzip
import json
import re
import tempfile
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from synthetic.sweep import SweepConfig, compiled_grid  # noqa: E402


def kernel_sources(hlo_text):
    """``{kernel name: op_name}`` from the metadata of a compiled HLO module's instructions."""
    return {m.group(1): m.group(2) for m in re.finditer(r'%([\w.\-]+) = [^\n]*?op_name="([^"]+)"', hlo_text)}


def kernel_times(trace_dir):
    """``(total µs, calls)`` per kernel name from the profiler's trace (the runtime's own events left out)."""
    events = json.load(gzip.open(glob.glob(f"{trace_dir}/plugins/profile/*/*.trace.json.gz")[0]))["traceEvents"]
    total, calls = collections.Counter(), collections.Counter()
    for event in events:
        if event.get("ph") == "X" and not event["name"].startswith(("ThunkExecutor", "$", "Pjit", "Common")):
            total[event["name"]] += event["dur"]
            calls[event["name"]] += 1
    return total, calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="graded")
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--exact-every", type=int, default=50)
    parser.add_argument("--tau", type=int, default=4)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    config = dataclasses.replace(SweepConfig.preset(args.task), seeds=args.seeds, steps=args.steps,
                                 exact_every=args.exact_every, learner_dtype="float32")
    task, etas = config.make_task(), jnp.asarray(config.etas, dtype=float)
    seeds = jnp.asarray(config.seed + np.arange(config.seeds))
    compiled = compiled_grid(config.run_config()).lower(task, etas, args.tau, seeds).compile()
    jax.block_until_ready(compiled(task, etas, args.tau, seeds))
    trace_dir = tempfile.mkdtemp(prefix="profile-sweep-")
    start = time.perf_counter()
    with jax.profiler.trace(trace_dir):
        jax.block_until_ready(compiled(task, etas, args.tau, seeds))
    wall = time.perf_counter() - start
    total, calls = kernel_times(trace_dir)
    sources = kernel_sources(compiled.as_text())
    per_step = sum(t for name, t in total.items() if calls[name] >= config.steps)
    print(f"{args.task}: {len(config.etas)} η × {config.seeds} seeds × {config.steps} steps at τ = {args.tau}, probes "
          f"every {config.exact_every}: {wall:.2f} s wall under the profiler; kernels run once a step or more "
          f"{per_step / 1e3:.0f} ms ({per_step / 1e3 / config.steps:.2f} ms a step), the rest "
          f"{(sum(total.values()) - per_step) / 1e3:.0f} ms")
    for name, micros in total.most_common(args.top):
        print(f"{micros / 1e3:9.1f} ms {calls[name]:6d}×  {name[:36]:36s} {sources.get(name, '')[-90:]}")


if __name__ == "__main__":
    main()
