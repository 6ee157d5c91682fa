"""Peak memory and seconds per learner step of ``llm/`` with the §7 staleness probes on and off, side by side.

The same run (model, task, batch shape, τ, η, seed) is trained twice, each time in a fresh process so that its
peak resident memory (``ru_maxrss``) is its own: once with a probe at every cycle's last step (lag τ − 1) and
once without. The probes keep m chunk sums per batch (``--chunks``, at most 2m gradient-sized vectors) and never
a [B, d] per-group gradient matrix, so the ratio stays bounded whatever the batch. Prints both peaks, their
ratio (target ≤ 3×), seconds per learner step, and the arithmetic of the same design at 1 B parameters.

Defaults: SmolLM2-135M, B = 8 prompts × n = 8, 2 worded examples (``--shot-format question``, ~50 tokens; 8
worded ones make a probe cost over 20 minutes on two cores), τ = 2 and 2 learner steps, so the probe run measures
one probe at lag 1.

Measured 2026-12-02 on the idle 2-core machine: peak RSS 8.55 GiB off, 16.30 GiB with one probe (1.91×), 32.0 s
and 66.6 s per learner step (70 s and 230 s before each forward encoded a group's prompt once), 4 minutes in all.

Run: ``python benchmarks/bench_llm_memory.py [--model smollm2] [--steps 2] [--tau 2] [--prompts 8] [--shots 2]
[--shot-format question]``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

GIB = 2 ** 30


def child(args):
    """Train once in this process; print ``{peak_gib, seconds, load_seconds, steps, parameters}`` as JSON."""
    import torch

    from llm.config import GRPOConfig, ModelConfig, RunConfig, TaskConfig, WarmstartConfig
    from llm.model import load
    from llm.pipeline import train

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    model = ModelConfig(args.model, device=args.device)
    tokenizer_and_model = load(model, args.seed)
    loaded = time.perf_counter()
    grpo = GRPOConfig(prompts=args.prompts, group=args.group, max_new_tokens=args.max_new_tokens,
                      val_every=args.steps + 1, bias_every=args.tau if args.probes else 0, bias_chunks=args.chunks,
                      micro_batch=args.micro_batch)
    task = TaskConfig(heldout=4, shots=args.shots, shot_format=args.shot_format)
    config = RunConfig(args.tau, args.eta, args.seed, args.steps, model, task, WarmstartConfig(steps=0), grpo)
    series, _, _, nan_step = train(config, tokenizer_and_model)
    done = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux reports KiB
    print(json.dumps({"peak_gib": peak, "seconds": done - loaded, "load_seconds": loaded - start,
                      "steps": args.steps, "probes": int((series["bias_sq"] == series["bias_sq"]).sum()),
                      "nan_step": int(nan_step),
                      "parameters": sum(p.numel() for p in tokenizer_and_model[1].parameters())}))


def one_billion(chunks, d=1.24e9):
    """GiB of the design at d float32 parameters (Llama-3.2-1B: 1.24 B), by component."""
    vector = 4 * d / GIB
    return {"weights, grads, AdamW moments": 4 * vector, "reference + behaviour copies": 2 * vector,
            "tracking vectors (θ0, θ_t, θ_t+1, β, u_t, u_t-1, ĝ_t, ĝ_t-1)": 8 * vector,
            f"probe chunk sums (2m, m = {chunks}) and one group's gradient": (2 * chunks + 1) * vector}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--tau", type=int, default=2)
    parser.add_argument("--eta", type=float, default=1e-5)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--shots", type=int, default=2)
    parser.add_argument("--shot-format", default="question", help="worded 2-shot prompts (~50 tokens), as measured")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--micro-batch", type=int, default=8, help="sequences per learner forward/backward")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    results = {}
    for probes in (False, True):
        command = [sys.executable, __file__, "--child", *sys.argv[1:]] + (["--probes"] if probes else [])
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[probes] = json.loads(out.strip().splitlines()[-1])
    off, on = results[False], results[True]
    print(f"{args.model}: {off['parameters']:,} parameters; B = {args.prompts}, n = {args.group}, "
          f"L ≤ {args.max_new_tokens}, τ = {args.tau}, {args.steps} learner steps, {args.threads} thread(s), "
          f"{args.device}")
    for name, r in (("probes off", off), (f"probes on ({r_probes(on)})", on)):
        print(f"{name:>22}: peak RSS {r['peak_gib']:6.2f} GiB, {r['seconds'] / r['steps']:7.1f} s per learner step "
              f"(load {r['load_seconds']:.0f} s)")
    print(f"ratio on ÷ off: {on['peak_gib'] / off['peak_gib']:.2f}× peak memory (target ≤ 3×)")
    for chunks in sorted({2, args.chunks}):
        parts = one_billion(chunks)
        print("1.24 B parameters, float32, one GPU (GiB): " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
              + f" → {sum(parts.values()):.0f} GiB + the learner batch's activations (an H200 holds 141 GiB)")


def r_probes(r):
    return f"{r['probes']} probe{'s' if r['probes'] != 1 else ''}"


if __name__ == "__main__":
    main()
