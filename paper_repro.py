"""`repro`: the command line of the toolkit. It only wires commands to library functions.

Every command validates its input once, here, and turns bad input into a
one-line error naming the bad value (exit code 2), never a traceback.
"""

import enum
import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from results import StoreError

app = typer.Typer(
    help="Check the staleness-learning-rate scaling laws of asynchronous GRPO, and pick a safe learning rate.",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
sweep_app = typer.Typer(help="Run a sweep over (τ, η, seed) and write a results store.")
app.add_typer(sweep_app, name="sweep")


class InputError(ValueError):
    """Bad input found while a command runs (the library's ValueErrors are treated alike)."""


def floats(option, text, *, positive=False):
    """Parse a comma list of finite floats for ``option``; a bad entry is named in the error."""
    values = []
    for item in str(text).split(","):
        try:
            value = float(item)
        except ValueError:
            raise typer.BadParameter(f"{item.strip()!r} is not a number", param_hint=option) from None
        if not math.isfinite(value):
            raise typer.BadParameter(f"{item.strip()!r} is not finite", param_hint=option)
        if positive and value <= 0:
            raise typer.BadParameter(f"{item.strip()} must be > 0", param_hint=option)
        values.append(value)
    return values


def ints(option, text, *, minimum=None):
    """Parse a comma list of integers for ``option``, each at least ``minimum``."""
    values = []
    for item in str(text).split(","):
        try:
            value = int(item)
        except ValueError:
            raise typer.BadParameter(f"{item.strip()!r} is not an integer", param_hint=option) from None
        if minimum is not None and value < minimum:
            raise typer.BadParameter(f"{value} must be ≥ {minimum}", param_hint=option)
        values.append(value)
    return values


def emit(result, as_json, table):
    """Print ``result`` as one JSON object (``--json``) or as ``table(result)`` text."""
    typer.echo(json.dumps(result, indent=None, default=float) if as_json else table(result))


def _print_version(value: bool):
    if value:
        from results.store import package_version

        typer.echo(package_version())
        raise typer.Exit()


def _help_without_command(ctx: typer.Context):
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_print_version, help="Print the package version and exit.")
    ] = False,
):
    _help_without_command(ctx)


@sweep_app.callback(invoke_without_command=True)
def _sweep_root(ctx: typer.Context):
    _help_without_command(ctx)


# ---------------------------------------------------------------- theory & bandits (issue 2)


def _finite(option, value, *, positive=False):
    """Reject a NaN/inf float option (click parses them) and, with ``positive``, a value ≤ 0."""
    if not math.isfinite(value):
        raise typer.BadParameter(f"{value!r} is not finite", param_hint=option)
    if positive and value <= 0:
        raise typer.BadParameter(f"{value:g} must be > 0", param_hint=option)
    return value


def _at_least(option, value, least):
    if value < least:
        raise typer.BadParameter(f"{value} must be ≥ {least}", param_hint=option)
    return value


def _check_clip(eps, kl, dual_clip):
    _finite("--eps", eps, positive=True)
    if _finite("--kl", kl) < 0:
        raise typer.BadParameter(f"{kl:g} must be ≥ 0", param_hint="--kl")
    if dual_clip is not None and not (math.isfinite(dual_clip) and dual_clip > 1.0 + eps):
        raise typer.BadParameter(f"{dual_clip!r} must be finite and > 1 + eps = {1 + eps:g}", param_hint="--dual-clip")


def _correct_arms(text, n_arms):
    arms = ints("--correct", text, minimum=0)
    for arm in arms:
        if arm >= n_arms:
            raise typer.BadParameter(f"arm {arm} is out of range 0..{n_arms - 1} (K = {n_arms})", param_hint="--correct")
    return arms


def _logits(option, text, n_arms=None):
    values = floats(option, text)
    if n_arms is None and len(values) < 2:
        raise typer.BadParameter(f"{text!r} has {len(values)} entry: a bandit needs K ≥ 2 arms", param_hint=option)
    if n_arms is not None and len(values) != n_arms:
        raise typer.BadParameter(f"{text!r} has {len(values)} entries, --theta has {n_arms}", param_hint=option)
    return values


def _exact_jax():
    """Exact bandit numbers are float64: the reports promise 1e-6 relative agreement."""
    import jax

    jax.config.update("jax_enable_x64", True)


def _theory_table(result):
    marks = {True: "sympy ✓ (K = 2)", False: "sympy ✗ FAILED", None: "composed from the above"}
    return "\n".join(f"[{marks[item['checked']]}] {item['statement']}" for item in result["derivations"])


@app.command("theory")
def theory_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object {derivations: [...]}.")] = False,
):
    """Print the softmax-bandit closed forms of THEORY.md §8, each checked with sympy for K = 2."""
    from theory.softmax_bandit import derivations

    result = {"derivations": [{"statement": s, "checked": c} for s, c in derivations()]}
    emit(result, as_json, _theory_table)
    return 1 if any(item["checked"] is False for item in result["derivations"]) else 0


def _bias_table(r):
    a = r["analytic"]
    return "\n".join([
        f"‖b‖ = {r['bias_norm']:.6g}   (b = g(θ, β) − g_on(θ), exact)",
        f"‖θ − β‖ = {r['stale_drift']:.6g}",
        f"Lemma 1 bound C_b ‖θ − β‖ = {r['bound']:.6g}   (analytic §8: {a['bound']:.6g})",
        f"  G = {r['G']:.6g}, L_D = {r['L_D']:.6g}, L_β = {r['L_beta']:.6g}, C_b = {r['C_b']:.6g}",
        f"  at (θ, β): 2 G TV + gap = {r['pointwise_bound']:.6g} (TV = {r['tv']:.6g}, gap = {r['behaviour_gap']:.6g})",
        f"g(θ, β) = {[round(v, 6) for v in r['g_stale']]}",
        f"g_on(θ) = {[round(v, 6) for v in r['g_on']]}",
        f"region: {r['region']} ({r['n_pairs']} pairs)",
    ])


@app.command("bias")
def bias_command(
    theta: Annotated[str, typer.Option(help="Learner logits θ, comma list of K ≥ 2 numbers.")],
    beta: Annotated[str, typer.Option(help="Behaviour logits β (the stale policy), K numbers.")],
    correct: Annotated[str, typer.Option(help="Comma list of correct arms (reward 1), 0-based.")] = "0",
    group: Annotated[int, typer.Option(help="Group size n ≥ 2.")] = 4,
    eps: Annotated[float, typer.Option(help="Clip ε of (3), > 0.")] = 0.2,
    kl: Annotated[float, typer.Option(help="KL coefficient κ (exact KL(π_θ ‖ π_ref)).")] = 0.0,
    ref: Annotated[str | None, typer.Option(help="Reference logits, K numbers (default: uniform).")] = None,
    dual_clip: Annotated[float | None, typer.Option(help="Dual-clip constant c > 1 + ε (default: none).")] = None,
    points: Annotated[int, typer.Option(min=1, help="Sampled pairs in the region of the constants.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the sampled pairs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Exact staleness bias b (17) of a softmax bandit at (θ, β), and Lemma 1's bound C_b ‖θ − β‖."""
    _at_least("--group", group, 2)
    theta_values = _logits("--theta", theta)
    beta_values = _logits("--beta", beta, len(theta_values))
    ref_values = None if ref is None else _logits("--ref", ref, len(theta_values))
    arms = _correct_arms(correct, len(theta_values))
    _check_clip(eps, kl, dual_clip)
    _exact_jax()
    from synthetic.bandit import bandit_task, bias_report

    task = bandit_task(len(theta_values), arms, group, eps, kl, ref_values, dual_clip)
    emit(bias_report(task, theta_values, beta_values, points, seed), as_json, _bias_table)


Task = enum.Enum("Task", {name: name for name in ("bandit", "contextual", "arithmetic")})  # arithmetic: llm (issue 4)


def _constants_table(r):
    rows = [f"{'':8}{'numeric':>12}{'analytic':>12}{'ratio':>8}"]
    for name in ("G", "U", "L_D", "L_beta", "C_b"):
        bound = r.get(f"{name}_analytic")
        tail = f"{bound:12.5g}{bound / r[name]:8.1f}" if bound is not None and r[name] > 0 else f"{'–':>12}{'':8}"
        rows.append(f"{name:8}{r[name]:12.5g}{tail}")
    run = r["U_run"]
    return "\n".join(rows + [
        f"region: {r['region']} ({r['n_pairs']} pairs, max ‖θ − β‖_∞ = {r['max_pair_distance_inf']:.4g})",
        f"U: max ‖θ_t+1 − θ_t‖/η of async SGD, η = {run['eta']:.4g}, τ = {run['tau']}, {run['steps']} steps, "
        f"{run['groups_per_step']} groups per step; analytic U = G (plain ascent)",
    ])


@app.command("constants")
def constants_command(
    task: Annotated[Task, typer.Option(help="bandit (single prompt, K arms) or contextual (log-linear, P prompts).")],
    arms: Annotated[int, typer.Option(help="K ≥ 2: arms (answers per prompt).")] = 4,
    group: Annotated[int, typer.Option(help="Group size n ≥ 2.")] = 4,
    eps: Annotated[float, typer.Option(help="Clip ε of (3), > 0.")] = 0.2,
    kl: Annotated[float, typer.Option(help="KL coefficient κ to the uniform reference.")] = 0.0,
    radius: Annotated[float, typer.Option(help="r of the region: the ∞-ball ‖θ‖_∞ ≤ r around uniform logits.")] = 0.5,
    prompts: Annotated[int, typer.Option(min=1, help="P: prompts of the contextual task.")] = 16,
    dim: Annotated[int, typer.Option(min=1, help="d: feature dimension of the contextual task.")] = 4,
    correct: Annotated[str, typer.Option(help="Correct arms of the bandit task, comma list.")] = "0",
    dual_clip: Annotated[float | None, typer.Option(help="Dual-clip constant c > 1 + ε (default: none).")] = None,
    points: Annotated[int, typer.Option(min=2, help="Sampled (θ, β) pairs in the region.")] = 64,
    tau: Annotated[int, typer.Option(min=1, help="Reuse τ of the SGD run that measures U.")] = 4,
    steps: Annotated[int, typer.Option(min=1, help="Steps of the SGD run that measures U.")] = 50,
    batch: Annotated[int, typer.Option(min=1, help="Groups per step of the SGD run that measures U.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the features, the pairs and the SGD run.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    model: Annotated[str | None, typer.Option(help="llm: tiny, smollm2, a model directory or a .gguf file "
                                                   "(§7 estimators on --task arithmetic).")] = None,
):
    """Local constants G, U, L_D, L_β (THEORY.md §2) over a ball, beside their §8 analytic upper bounds."""
    if model is not None or task is Task.arithmetic:  # llm (issue 4): a real model, §7 estimators
        return _llm_constants(model, task, seed, as_json)
    _at_least("--arms", arms, 2)
    _at_least("--group", group, 2)
    _check_clip(eps, kl, dual_clip)
    _finite("--radius", radius, positive=True)
    arm_list = _correct_arms(correct, arms)
    _exact_jax()
    import jax.numpy as jnp

    from synthetic.bandit import bandit_task, constants_report, contextual_task

    if task is Task.bandit:
        bandit, features, d = bandit_task(arms, arm_list, group, eps, kl, None, dual_clip), None, arms
    else:
        (bandit, features), d = contextual_task(prompts, arms, dim, group, eps, kl, seed, dual_clip), dim
    report = constants_report(bandit, jnp.zeros(d), radius, points, seed, features, tau, steps, batch)
    emit({"task": task.value, "arms": arms, "group": group, "eps": eps, "kl": kl, **report}, as_json,
         _constants_table)


# ---------------------------------------------------------------- synthetic sweeps (issue 3)

SynthTask = enum.Enum("SynthTask", {name: name for name in ("bandit", "contextual", "autoregressive")})
SynthOptimizer = enum.Enum("SynthOptimizer", {"sgd": "sgd", "adam": "adam"})
SynthReuse = enum.Enum("SynthReuse", {"whole": "whole", "slices": "slices"})


@sweep_app.command("synthetic")
def sweep_synthetic_command(
    out: Annotated[Path, typer.Option(help="Results store (netCDF) to write; STORE.parts/ keeps finished τ values.")],
    task: Annotated[SynthTask, typer.Option(help="Synthetic task.")] = SynthTask.autoregressive,
    optimizer: Annotated[SynthOptimizer, typer.Option(help="Learner optimiser (optax).")] = SynthOptimizer.sgd,
    quick: Annotated[bool, typer.Option("--quick/--full", help="Preset grid used for options not given.")] = False,
    tau: Annotated[str | None, typer.Option(help="Comma list of τ ≥ 1 (default: the preset's).")] = None,
    eta: Annotated[str | None, typer.Option(help="Comma list of learning rates η > 0 (default: the preset's).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Seeds per cell (default: the preset's).")] = None,
    seed: Annotated[int, typer.Option(help="First seed; also seeds the task.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Learner steps T per run (default: the preset's).")] = None,
    batch: Annotated[int, typer.Option(help="Groups per rollout batch B.")] = 16,
    group: Annotated[int, typer.Option(help="Group size n.")] = 8,
    eps: Annotated[float, typer.Option(help="Clip ε.")] = 0.2,
    kl: Annotated[float, typer.Option(help="KL coefficient κ (exact KL to θ_0).")] = 0.0,
    dual_clip: Annotated[float | None, typer.Option(help="Dual-clip constant c > 1 + ε.")] = None,
    clip_norm: Annotated[float | None, typer.Option(help="Global gradient-norm clip (enforces U).")] = None,
    beta1: Annotated[float, typer.Option(help="Adam's momentum β1.")] = 0.9,
    reuse: Annotated[SynthReuse, typer.Option(help="Each of the τ steps uses the whole batch or one of τ slices.")] = (
        SynthReuse.whole),
    exact_every: Annotated[int | None, typer.Option(help="Exact population metrics every k steps.")] = None,
    lemma1: Annotated[bool, typer.Option("--lemma1/--no-lemma1", help="Record Lemma 1's bias_bound beside "
                                                                      "bias_norm.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    executor: Annotated[str, typer.Option(help="Where the τ jobs run: local, process (a pool) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Pool processes or local Ray CPUs (default: all cores).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
):
    """Run async GRPO (THEORY.md §3) on a synthetic task over τ × η × seed, exactly measured."""
    from results import check_executor
    from synthetic.sweep import SweepConfig, run_sweep

    if workers is not None:
        _at_least("--workers", workers, 1)
    if address is not None and executor != "ray":
        raise typer.BadParameter(f"{address!r} needs --executor ray", param_hint="--address")
    check_executor(executor, workers, address)

    _exact_jax()
    _check_clip(eps, kl, dual_clip)
    if clip_norm is not None:
        _finite("--clip-norm", clip_norm, positive=True)
    if not (math.isfinite(beta1) and 0 <= beta1 < 1):
        raise typer.BadParameter(f"{beta1!r} must be in [0, 1)", param_hint="--beta1")
    changes = {"optimizer": optimizer.value, "beta1": beta1, "seed": seed, "batch": _at_least("--batch", batch, 1),
               "group": _at_least("--group", group, 2), "eps": eps, "kappa": kl, "dual_clip": dual_clip,
               "clip_norm": clip_norm, "reuse": reuse.value, "lemma1": lemma1}
    if tau is not None:
        changes["taus"] = tuple(ints("--tau", tau, minimum=1))
    if eta is not None:
        changes["etas"] = tuple(floats("--eta", eta, positive=True))
    if seeds is not None:
        changes["seeds"] = _at_least("--seeds", seeds, 1)
    if steps is not None:
        changes["steps"] = _at_least("--steps", steps, 1)
    if exact_every is not None:
        changes["exact_every"] = _at_least("--exact-every", exact_every, 1)
    ds = run_sweep(SweepConfig.preset(task.value, quick, **changes), out, progress=progress, executor=executor,
                   workers=workers, address=address)
    typer.echo(f"wrote {out}: {dict(ds.sizes)}, variables {', '.join(sorted(ds.data_vars))}")


# ---------------------------------------------------------------- llm (issue 4)

LlmTask = enum.Enum("LlmTask", {"arithmetic": "arithmetic", "gsm8k": "gsm8k"})
LlmOptimizer = enum.Enum("LlmOptimizer", {"adamw": "adamw", "sgd": "sgd"})
LlmReuse = enum.Enum("LlmReuse", {"whole": "whole", "slices": "slices"})
LlmPipeline = enum.Enum("LlmPipeline", {"reuse": "reuse", "async": "async"})
LlmSize = enum.Enum("LlmSize", {"small": "small", "medium": "medium"})


@sweep_app.command("llm")
def sweep_llm_command(
    out: Annotated[Path, typer.Option(help="Results store (netCDF) to write; STORE.parts/ keeps finished runs.")],
    model: Annotated[str, typer.Option(help="tiny, smollm2, a local model directory or a .gguf file.")] = "tiny",
    size: Annotated[LlmSize, typer.Option(help="Width of the tiny Llama.")] = LlmSize.small,
    task: Annotated[LlmTask, typer.Option(help="Verifiable-reward task.")] = LlmTask.arithmetic,
    data: Annotated[Path | None, typer.Option(help="GSM8K-format JSONL file (with --task gsm8k).")] = None,
    digits: Annotated[int, typer.Option(help="Arithmetic difficulty: digits per operand.")] = 1,
    quick: Annotated[bool, typer.Option("--quick/--full", help="Preset grid used for options not given.")] = True,
    tau: Annotated[str | None, typer.Option(help="Comma list of τ ≥ 1 (default: the preset's).")] = None,
    eta: Annotated[str | None, typer.Option(help="Comma list of learning rates η > 0 (default: the preset's).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Number of seeds 0..N−1 (default: the preset's).")] = None,
    steps: Annotated[int | None, typer.Option(help="Learner steps T per run (default: the preset's).")] = None,
    optimizer: Annotated[LlmOptimizer, typer.Option(help="Learner optimiser.")] = LlmOptimizer.adamw,
    reuse: Annotated[LlmReuse, typer.Option(help="Each of the τ steps uses the whole batch or one of τ slices.")] = (
        LlmReuse.whole),
    pipeline: Annotated[LlmPipeline, typer.Option(help="reuse (§3, deterministic) or async (a rollout thread).")] = (
        LlmPipeline.reuse),
    bias_every: Annotated[int | None, typer.Option(help="bias_norm (§7) every k steps; 0: never (default: preset).")] = (
        None),
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda).")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads per run; tiny models run fastest on one.")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    executor: Annotated[str, typer.Option(help="Where the runs go: local, process (a pool) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Pool processes or local Ray CPUs (default: all cores).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Load a model directory whose weights are "
                                               "only pickle files (they can run code): trusted files only.")] = False,
):
    """Run async GRPO (THEORY.md §3 reuse pipeline) on a Llama-architecture model over τ × η × seed."""
    import dataclasses

    import torch

    from llm.config import ModelConfig, TaskConfig
    from llm.sweep import preset, run_sweep
    from results import check_executor

    torch.set_num_threads(_at_least("--threads", threads, 1))
    if workers is not None:
        _at_least("--workers", workers, 1)
    if address is not None and executor != "ray":
        raise typer.BadParameter(f"{address!r} needs --executor ray", param_hint="--address")
    check_executor(executor, workers, address)
    config = preset(quick, size.value)
    if model not in ("tiny", "smollm2") and not Path(model).is_dir() and not (
            model.endswith(".gguf") and Path(model).is_file()):
        raise typer.BadParameter(f"{model!r} is not tiny, smollm2, a directory or a .gguf file", param_hint="--model")
    if task is LlmTask.gsm8k and data is None:
        raise typer.BadParameter("--task gsm8k needs --data FILE.jsonl", param_hint="--data")
    changes = {"model": ModelConfig(model, size.value, device, allow_pickle=allow_pickle),
               # a pretrained model needs no supervised start
               "warmstart": config.warmstart if model == "tiny" else dataclasses.replace(config.warmstart, steps=0),
               "task": TaskConfig(task.value, _at_least("--digits", digits, 1), path=str(data or "")),
               "grpo": dataclasses.replace(config.grpo, optimizer=optimizer.value, reuse=reuse.value,
                                           pipeline=pipeline.value)}
    if bias_every is not None:
        changes["grpo"] = dataclasses.replace(changes["grpo"], bias_every=_at_least("--bias-every", bias_every, 0))
    if tau is not None:
        changes["taus"] = tuple(ints("--tau", tau, minimum=1))
    if eta is not None:
        changes["etas"] = tuple(floats("--eta", eta, positive=True))
    if seeds is not None:
        changes["seeds"] = tuple(range(_at_least("--seeds", seeds, 1)))
    if steps is not None:
        changes["steps"] = _at_least("--steps", steps, 1)
    ds = run_sweep(dataclasses.replace(config, **changes), out, progress=progress, executor=executor, workers=workers,
                   address=address)
    collapsed = int((ds.nan_step >= 0).sum())
    typer.echo(f"wrote {out}: {dict(ds.sizes)}, {collapsed} run(s) went NaN")


def _llm_constants_table(r):
    rows = [f"{r['model']} ({r['parameters']:,} parameters) on {r['task']}; region: ‖θ′ − θ‖ = {r['region']['radius']}"
            f" around ‖θ‖ = {r['region']['theta_norm']:.4g}, directions {', '.join(r['region']['directions'])}"]
    for name in ("G", "U", "L_D", "L_beta", "r_clip"):
        c = r[name]
        rows.append(f"{name:>7} = {c['value']:.4g} ± {c['uncertainty']:.2g}   ({c['samples']} samples)")
    return "\n".join(rows + [f"    C_b = 2 G L_D + L_β = {r['C_b']:.4g}   ({r['seconds']} s)"])


def _llm_constants(model, task, seed, as_json):
    """``repro constants --model``: :func:`llm.constants.estimate_constants` on its preset."""
    if task is not Task.arithmetic:
        raise typer.BadParameter(f"--model needs --task arithmetic, not {task.value}", param_hint="--task")
    model = model or "tiny"
    if model not in ("tiny", "smollm2") and not Path(model).is_dir() and not (
            model.endswith(".gguf") and Path(model).is_file()):
        raise typer.BadParameter(f"{model!r} is not tiny, smollm2, a directory or a .gguf file", param_hint="--model")
    from llm.constants import ConstantsConfig, estimate_constants

    emit(estimate_constants(ConstantsConfig.preset(model, seed)), as_json, _llm_constants_table)

# ---------------------------------------------------------------- analysis, advice, figures (issue 5)

def _analysis(store, threshold, n_boot):
    from figures.analysis import analyze, load_sweep

    if not (math.isfinite(threshold) and 0 <= threshold < 1):
        raise typer.BadParameter(f"{threshold!r} must be in [0, 1)", param_hint="--threshold")
    return analyze(load_sweep(store), threshold, _at_least("--boot", n_boot, 10))


def _interval_text(name, iv):
    return f"{name:16}{iv['value']:.4g} [{iv['low']:.4g}, {iv['high']:.4g}]"


def _analysis_table(s):
    rows = [f"grid: τ = {s['tau']}, η = {s['eta']}; censor window W = {s['censor_window']} steps",
            "collapse probability over seeds (rows τ, columns η):"]
    rows += ["  " + " ".join(f"{p:5.2f}" for p in row) for row in s["collapse_probability"]]
    rows.append(f"η_max(τ) at threshold {s['threshold']:g}: {s['eta_max']}; kicks {s['kicks']}, drifts {s['drifts']}")
    rows += [_interval_text(k, v) + f"  {s['verdicts'].get(k, '')}" for k, v in s["estimates"].items()]
    return "\n".join(rows)


StoreOption = Annotated[Path, typer.Option("--store", help="Results store (netCDF) with dims tau, eta, seed, step.")]
ThresholdOption = Annotated[float, typer.Option(help="Collapse fraction a cell may have and still count as stable.")]
BootOption = Annotated[int, typer.Option("--boot", help="Bootstrap resamples of seeds per interval.")]


@app.command("analyze")
def analyze_command(
    store: StoreOption,
    threshold: ThresholdOption = 0.0,
    n_boot: BootOption = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Collapse probabilities, η_max(τ) and the fits of THEORY.md §6 with bootstrap intervals and verdicts."""
    emit(_analysis(store, threshold, n_boot).summary(), as_json, _analysis_table)


@app.command("fit")
def fit_command(
    store: StoreOption,
    threshold: ThresholdOption = 0.0,
    n_boot: BootOption = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file (input of repro advise).")] = None,
):
    """c_loc (median η_max·τ) and c_hor (median η·t*) of the rule (36)–(38), with bootstrap intervals."""
    estimates = _analysis(store, threshold, n_boot).estimates
    result = {"store": str(store), "threshold": threshold}
    for name in ("c_loc", "c_hor"):
        iv = estimates[name]
        if not math.isfinite(iv.value):
            raise InputError(f"cannot fit {name} from {store}: "
                             + ("no τ has η_max inside the η grid" if name == "c_loc" else "no run collapses"))
        result |= {name: iv.value, f"{name}_low": iv.low, f"{name}_high": iv.high}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    emit(result, as_json, lambda r: "\n".join(
        _interval_text(n, {"value": r[n], "low": r[f"{n}_low"], "high": r[f"{n}_high"]}) for n in ("c_loc", "c_hor")))


def _read_constants(path):
    from theory.rule import c_hor_from_radius, c_loc_from_radius

    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise typer.BadParameter(f"cannot read {path}: {str(error).splitlines()[0]}", param_hint="--constants")
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path} is not a JSON object", param_hint="--constants")
    if "c_loc" in data and "c_hor" in data:
        pairs = {"c_loc": data["c_loc"], "c_hor": data["c_hor"]}
    elif all(k in data for k in ("r_clip", "R", "U")):
        pairs = {"r_clip": data["r_clip"], "R": data["R"], "U": data["U"]}
    else:
        raise typer.BadParameter(f"{path} has neither c_loc and c_hor nor r_clip, R and U", param_hint="--constants")
    for key, value in pairs.items():
        if isinstance(value, dict) and "value" in value:  # llm constants carry {value, uncertainty, samples}
            value = pairs[key] = value["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise typer.BadParameter(f"{key} = {value!r} in {path} must be a finite number > 0",
                                     param_hint="--constants")
    if "c_loc" in pairs:
        return pairs["c_loc"], pairs["c_hor"]
    return c_loc_from_radius(pairs["r_clip"], pairs["U"]), c_hor_from_radius(pairs["R"], pairs["U"])


@app.command("advise")
def advise_command(
    tau: Annotated[int, typer.Option(help="Staleness τ ≥ 1 of your pipeline.")],
    horizon: Annotated[int, typer.Option(help="Training horizon T ≥ 1 in learner steps.")],
    constants: Annotated[Path, typer.Option(help="JSON with c_loc and c_hor (repro fit --json) or r_clip, R and U.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Largest safe η by the two-constraint rule (36)–(38): min(c_loc/τ, c_hor/T), which binds, and the margin."""
    import dataclasses

    from theory.rule import safe_learning_rate

    c_loc, c_hor = _read_constants(constants)
    advice = safe_learning_rate(_at_least("--tau", tau, 1), _at_least("--horizon", horizon, 1), c_loc, c_hor)
    emit(dataclasses.asdict(advice), as_json, lambda a: "\n".join([
        f"η_max = {a['eta_max']:.4g}  ({a['binding']} constraint binds)",
        f"local   η ≤ c_loc/τ = {a['c_loc']:.4g}/{a['tau']} = {a['eta_local']:.4g}",
        f"horizon η ≤ c_hor/T = {a['c_hor']:.4g}/{a['horizon']} = {a['eta_horizon']:.4g}",
        f"margin: the other constraint allows {a['margin']:.3g}× more",
    ]))


def _sweep_stores(quick, runs_dir, progress, workers):
    """Run or reuse every sweep the figures need.

    The synthetic sweeps run in this process (XLA already uses every core); the
    llm runs, one torch thread each, on a pool of ``workers`` processes when
    ``workers`` > 1 (on this project's 2 cores, 1.7× the throughput of one
    process with two threads). Returns ``{substrate: store}``, ``{substrate: ESS-scaled store}`` (the same
    sweep at the baselines' η₀, read off the first store) and what was reused or
    computed. A store's file name carries a hash of its config, so a changed
    preset gets a new store instead of meeting the old one's parts.
    """
    import dataclasses
    import functools
    import hashlib

    from figures.analysis import load_sweep
    from figures.baselines import ESS_BASE, store_reference_eta
    from llm.sweep import preset as llm_preset
    from llm.sweep import run_sweep as run_llm
    from results.store import config_json
    from synthetic.sweep import SweepConfig
    from synthetic.sweep import run_sweep as run_synthetic

    def ess_variant(config, eta):
        if hasattr(config, "grpo"):
            grpo = dataclasses.replace(config.grpo, ess_base=ESS_BASE, bias_every=0)
            return dataclasses.replace(config, etas=(eta,), grpo=grpo)
        return dataclasses.replace(config, etas=(eta,), ess_base=ESS_BASE, lemma1=False)

    def path(name, config):
        digest = hashlib.sha1(config_json(config).encode()).hexdigest()[:8]
        return runs_dir / f"{name}-{'quick' if quick else 'full'}-{digest}.nc"

    substrates = {f"synthetic-{task}": (run_synthetic, SweepConfig.preset(task, quick))
                  for task in ("bandit", "contextual", "autoregressive")}
    pool = {"executor": "process", "workers": workers, "threads": 1} if workers > 1 else {}
    for size in ("small", "medium"):
        substrates[f"llm-{size}"] = (functools.partial(run_llm, **pool), llm_preset(quick, size))
    stores, ess_stores, log = {}, {}, []
    for name, (run, config) in substrates.items():
        out = path(name, config)
        log.append(f"{name}: {_run_logged(lambda o: run(config, o, progress), out)} {out}")
        ess_config = ess_variant(config, store_reference_eta(load_sweep(out)))
        ess_out = path(f"{name}-ess", ess_config)
        log.append(f"{name} ESS-scaled: {_run_logged(lambda o: run(ess_config, o, progress), ess_out)} {ess_out}")
        stores[name], ess_stores[name] = out, ess_out
    return stores, ess_stores, log


def _run_logged(job, out):
    """Run ``job(out)`` and say whether its store was computed, resumed or reused."""
    before = out.stat().st_mtime_ns if out.exists() else None
    resumed = out.with_name(out.name + ".parts").exists()
    job(out)
    if before is None:
        return "resumed" if resumed else "computed"
    return "reused" if out.stat().st_mtime_ns == before else "rebuilt from its parts"


@app.command("figures")
def figures_command(
    quick: Annotated[bool, typer.Option("--quick", help="Small grids (tests, CI): the same figures, faster.")] = False,
    only: Annotated[str | None, typer.Option(help="Redraw one figure kind (reward, phase, table2, dynamics, "
                                                  "bias) or only REPORT.md (report).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the PNG and PDF figures and REPORT.md.")] = Path("figures/out"),
    runs: Annotated[Path, typer.Option(help="Folder of the sweep stores (reused when finished).")] = Path("runs"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")] = True,
    store: Annotated[list[Path] | None, typer.Option(
        help="Draw these stores instead (repeatable; named by file stem): a sweep, a TRL run, an imported log.")] = None,
    workers: Annotated[int | None, typer.Option(
        help="Processes for the llm runs, one torch thread each (default: every core; 1: in this process).")] = None,
):
    """Run or reuse every sweep the paper's figures need, then draw them all and write REPORT.md."""
    from figures.report import NAMES, render_all

    if only is not None and only not in NAMES:
        raise typer.BadParameter(f"{only!r} is not one of {', '.join(NAMES)}", param_hint="--only")
    if store:
        stems = [path.stem for path in store]
        if len(set(stems)) < len(stems):
            raise typer.BadParameter(f"two stores share a file stem ({', '.join(stems)})", param_hint="--store")
        stores, ess_stores = dict(zip(stems, store)), None
    else:
        _exact_jax()
        workers = (os.cpu_count() or 1) if workers is None else _at_least("--workers", workers, 1)
        stores, ess_stores, log = _sweep_stores(quick, runs, progress, workers)
        for line in log:
            typer.echo(line, err=True)
    written = render_all(stores, out, only, ess_stores=ess_stores, progress=progress)
    typer.echo(f"wrote {len(written)} files to {out}")


# ---------------------------------------------------------------- integrations (issue 6)

Framework = enum.Enum("Framework", {name: name for name in ("trl", "verl", "areal", "prime-rl", "nemo-rl", "openrlhf")})


def _tau_table(result):
    lines = [
        f"τ = {result['tau']} learner steps per rollout batch (max lag {result['max_lag']})",
        f"framework: {result['framework']} {result['trainer']}",
        f"formula: {result['formula']}",
        "knobs: " + ", ".join(
            f"{k}={v}" + (" (default)" if k in result["defaults"] else "") for k, v in result["knobs"].items()
        ),
        f"source: {result['source']}",
    ]
    return "\n".join(lines + [f"warning: {w}" for w in result["warnings"]])


@app.command("tau")
def tau_command(
    framework: Annotated[Framework, typer.Option(help="Framework whose config this is.")],
    config: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="Its config: YAML, JSON, TOML or launch command.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (tau, max_lag, formula, knobs, warnings).")
    ] = False,
):
    """Translate a framework's staleness knobs into the τ of THEORY.md §3 (the input of `repro advise --tau`)."""
    from integrations.staleness import translate

    emit(translate(framework.value, config).as_dict(), as_json, _tau_table)


LogFramework = enum.Enum("LogFramework", {name: name for name in ("trl", "verl")})


@app.command("import")
def import_command(
    framework: Annotated[LogFramework, typer.Option(help="Framework that wrote the log.")],
    log: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="trainer_state.json, JSONL (verl file logger) or CSV.")
    ],
    out: Annotated[Path, typer.Option(help="Results store (netCDF) to write.")],
    tau: Annotated[
        int | None, typer.Option(min=1, help="τ of the run (see `repro tau`); read from the log if absent.")
    ] = None,
    eta: Annotated[str | None, typer.Option(help="Learning rate η; the log's peak learning_rate if absent.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the run, the store's seed coord.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
):
    """Import a TRL or verl metric log into a results store of one run, named as in THEORY.md §6."""
    from integrations.logs import import_log
    from results import write_atomic

    eta_value = None if eta is None else floats("--eta", eta, positive=True)
    if eta_value is not None and len(eta_value) != 1:
        raise typer.BadParameter(f"{eta!r} is not one number", param_hint="--eta")
    ds = import_log(log, framework.value, tau=tau, eta=eta_value and eta_value[0], seed=seed)
    write_atomic(ds, out)
    config = json.loads(ds.attrs["config"])
    summary = {
        "out": str(out), "steps": ds.sizes["step"], "variables": sorted(ds.data_vars),
        "tau": config["tau"], "eta": config["eta"], "renamed": config["renamed"], "dropped": config["dropped"],
    }
    emit(summary, as_json, lambda s: "\n".join([
        f"wrote {s['out']}: {s['steps']} steps, τ = {s['tau']}, η = {s['eta']:g}",
        "mapped: " + ", ".join(f"{ours} ← {theirs}" for theirs, ours in s["renamed"].items()),
        "dropped (not numeric): " + (", ".join(s["dropped"]) or "none"),
    ]))


def main(argv=None):
    """Entry point of ``repro``: run the app, print any error on one line, exit 2 on bad input."""
    try:
        result = app(args=argv, prog_name="repro", standalone_mode=False)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.TyperException as error:  # click's usage errors, as vendored by typer
        typer.echo(f"Error: {error.format_message()}", err=True)
        sys.exit(2)
    except (InputError, StoreError, ValueError, FileNotFoundError) as error:
        typer.echo(f"Error: {str(error).splitlines()[0] if str(error) else type(error).__name__}", err=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Aborted.", err=True)
        sys.exit(130)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    main()
