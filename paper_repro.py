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

from llm.tasks import SHOT_FORMATS
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
        bool, typer.Option("--version", is_eager=True, callback=_print_version,
                           help="Print the package version and exit.")
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
            raise typer.BadParameter(f"arm {arm} is out of range 0..{n_arms - 1} (K = {n_arms})",
                                     param_hint="--correct")
    return arms


def _logits(option, text, n_arms=None):
    values = floats(option, text)
    if n_arms is None and len(values) < 2:
        raise typer.BadParameter(f"{text!r} has {len(values)} entry: a bandit needs K ≥ 2 arms", param_hint=option)
    if n_arms is not None and len(values) != n_arms:
        raise typer.BadParameter(f"{text!r} has {len(values)} entries, --theta has {n_arms}", param_hint=option)
    return values


def _exact_jax():
    """Exact bandit numbers are float64: the reports promise 1e-6 relative agreement. Compiled programs are kept on
    disk (:func:`synthetic.xla.use_compilation_cache`)."""
    import jax

    from synthetic import xla

    jax.config.update("jax_enable_x64", True)
    xla.use_compilation_cache()


def _theory_table(result):
    marks = {True: "sympy ✓ (K = 2)", False: "sympy ✗ FAILED", None: "composed from the above"}
    return "\n".join(f"[{marks[item['checked']]}] {item['statement']}" for item in result["derivations"])


@app.command("theory")
def theory_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object {derivations: [...]}.")] = False,
):
    """Print the softmax-bandit closed forms of docs/theory.md §8, each checked with sympy for K = 2."""
    from theory.softmax_bandit import derivations

    result = {"derivations": [{"statement": s, "checked": c} for s, c in derivations()]}
    emit(result, as_json, _theory_table)
    return 1 if any(item["checked"] is False for item in result["derivations"]) else 0


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
    from synthetic.bandit import bandit_task, bias_report, bias_table

    task = bandit_task(len(theta_values), arms, group, eps, kl, ref_values, dual_clip)
    emit(bias_report(task, theta_values, beta_values, points, seed), as_json, bias_table)


Task = enum.Enum("Task", {name: name for name in ("bandit", "contextual", "arithmetic")})  # arithmetic: llm (issue 4)


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
    """Local constants G, U, L_D, L_β (docs/theory.md §2) over a ball, beside their §8 analytic upper bounds."""
    if model is not None or task is Task.arithmetic:  # llm (issue 4): a real model, §7 estimators
        return _llm_constants(model, task, seed, as_json)
    _at_least("--arms", arms, 2)
    _at_least("--group", group, 2)
    _check_clip(eps, kl, dual_clip)
    _finite("--radius", radius, positive=True)
    arm_list = _correct_arms(correct, arms)
    _exact_jax()
    import jax.numpy as jnp

    from synthetic.bandit import bandit_task, constants_report, constants_table, contextual_task

    if task is Task.bandit:
        bandit, features, d = bandit_task(arms, arm_list, group, eps, kl, None, dual_clip), None, arms
    else:
        (bandit, features), d = contextual_task(prompts, arms, dim, group, eps, kl, seed, dual_clip), dim
    report = constants_report(bandit, jnp.zeros(d), radius, points, seed, features, tau, steps, batch)
    emit({"task": task.value, "arms": arms, "group": group, "eps": eps, "kl": kl, **report}, as_json,
         constants_table)


# ---------------------------------------------------------------- synthetic sweeps (issue 3)

SynthTask = enum.Enum("SynthTask", {name: name for name in ("graded", "autoregressive", "bandit", "contextual")})
SynthOptimizer = enum.Enum("SynthOptimizer", {"sgd": "sgd", "adam": "adam"})
SynthReuse = enum.Enum("SynthReuse", {"whole": "whole", "slices": "slices"})
SynthDtype = enum.Enum("SynthDtype", {"float64": "float64", "float32": "float32"})


@sweep_app.command("synthetic")
def sweep_synthetic_command(
    out: Annotated[Path, typer.Option(help="Results store (netCDF) to write; STORE.parts/ keeps finished τ values.")],
    task: Annotated[SynthTask, typer.Option(help="Synthetic task (graded: the Theorem 2 substrate family).")] = (
        SynthTask.graded),
    optimizer: Annotated[SynthOptimizer, typer.Option(help="Learner optimiser (optax).")] = SynthOptimizer.sgd,
    quick: Annotated[bool, typer.Option("--quick/--full", help="Preset grid used for options not given.")] = False,
    tau: Annotated[str | None, typer.Option(help="Comma list of τ ≥ 1 (default: the preset's).")] = None,
    eta: Annotated[str | None, typer.Option(help="Comma list of learning rates η > 0 (default: the preset's).")] = None,
    seeds: Annotated[int | None, typer.Option(help="Seeds per cell (default: the preset's).")] = None,
    seed: Annotated[int, typer.Option(help="First seed; also seeds the task.")] = 0,
    steps: Annotated[int | None, typer.Option(help="Learner steps T per run (default: the preset's).")] = None,
    batch: Annotated[int, typer.Option(help="Groups per learner step B.")] = 16,
    group: Annotated[int, typer.Option(help="Group size n.")] = 8,
    eps: Annotated[float, typer.Option(help="Clip ε.")] = 0.2,
    kl: Annotated[float, typer.Option(help="KL coefficient κ (exact KL to θ_0).")] = 0.0,
    dual_clip: Annotated[float | None, typer.Option(help="Dual-clip constant c > 1 + ε.")] = None,
    clip_norm: Annotated[float | None, typer.Option(help="Gradient-norm clip before the optimiser.")] = None,
    update_clip: Annotated[float | None, typer.Option(help="Clip of the applied update ‖u_t‖ (enforces U; "
                                                           "default: the preset's).")] = None,
    beta1: Annotated[float, typer.Option(help="Adam's momentum β1.")] = 0.9,
    reuse: Annotated[SynthReuse | None, typer.Option(help="Each of the τ steps uses the whole batch or one of τ "
                                                          "slices (default: the preset's).")] = None,
    family: Annotated[str, typer.Option(help="graded family knobs, e.g. p_wrong=0.1,accept_max=3 "
                                             "(docs/substrate.md).")] = "",
    learner_dtype: Annotated[SynthDtype, typer.Option(help="Learner precision (probes stay float64).")] = (
        SynthDtype.float64),
    exact_every: Annotated[int | None, typer.Option(help="Population probes every k steps.")] = None,
    lemma1: Annotated[bool, typer.Option("--lemma1/--no-lemma1", help="Record both bias bounds beside "
                                                                      "bias_norm.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    executor: Annotated[str, typer.Option(help="Where the τ jobs run: local, process (a pool) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Pool processes or local Ray CPUs (default: all cores).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
):
    """Run async GRPO (docs/theory.md §3) on a synthetic task over τ × η × seed, exactly measured."""
    from results import check_executor
    from synthetic.sweep import SweepConfig, run_sweep
    from synthetic.tasks import Family

    check_executor(executor, workers, address)
    _exact_jax()
    changes = {"optimizer": optimizer.value, "beta1": beta1, "seed": seed, "batch": batch, "group": group,
               "eps": eps, "kappa": kl, "dual_clip": dual_clip, "clip_norm": clip_norm, "lemma1": lemma1,
               "family": Family.parse(family), "learner_dtype": learner_dtype.value}
    optional = {"taus": tau and tuple(ints("--tau", tau, minimum=1)),
                "etas": eta and tuple(floats("--eta", eta, positive=True)), "seeds": seeds, "steps": steps,
                "exact_every": exact_every, "update_clip": update_clip, "reuse": reuse and reuse.value}
    config = SweepConfig.preset(task.value, quick, **changes, **{k: v for k, v in optional.items() if v is not None})
    ds = run_sweep(config, out, progress=progress, executor=executor, workers=workers, address=address)
    typer.echo(f"wrote {out}: {dict(ds.sizes)}, variables {', '.join(sorted(ds.data_vars))}")


# ---------------------------------------------------------------- llm (issue 12)

LlmTask = enum.Enum("LlmTask", {"arithmetic": "arithmetic", "reverse": "reverse", "gsm8k": "gsm8k"})
LlmOptimizer = enum.Enum("LlmOptimizer", {"adamw": "adamw", "sgd": "sgd"})
LlmReuse = enum.Enum("LlmReuse", {"whole": "whole", "slices": "slices"})
LlmPipeline = enum.Enum("LlmPipeline", {"reuse": "reuse", "async": "async"})
LlmSize = enum.Enum("LlmSize", {"small": "small", "medium": "medium"})
ShotFormat = enum.Enum("ShotFormat", {name: name for name in SHOT_FORMATS})


def _given(kind, help_text):
    """An option whose default None means "the preset's"."""
    return Annotated[kind | None, typer.Option(help=f"{help_text} (default: the preset's).")]


@sweep_app.command("llm")
def sweep_llm_command(
    out: Annotated[Path, typer.Option(help="Results store (netCDF) to write; STORE.parts/ keeps finished runs.")],
    model: Annotated[str, typer.Option(help="tiny, smollm2, a local model directory or a .gguf file.")] = "tiny",
    size: Annotated[LlmSize, typer.Option(help="Width of the tiny Llama.")] = LlmSize.small,
    task: _given(LlmTask, "Verifiable-reward task") = None,
    data: Annotated[Path | None, typer.Option(help="GSM8K-format JSONL file (with --task gsm8k).")] = None,
    digits: _given(int, "Digits per arithmetic operand or of the string to reverse") = None,
    shots: _given(int, "Worked examples before each prompt (a pretrained model's format)") = None,
    shot_format: Annotated[ShotFormat | None, typer.Option(help="How arithmetic's worked examples are written: "
                                                          "'a + b = c' lines or 'Q: What is a plus b?'.")] = None,
    quick: Annotated[bool, typer.Option("--quick/--full", help="Preset grid used for options not given.")] = True,
    lift: Annotated[bool, typer.Option("--lift", help="Start from the substrate that learns on every seed measured "
                                       "(reverse 3 digits, τ = 1, η = 1e-3, 32 prompts, 200 steps) instead of "
                                       "the collapse sweep's preset.")] = False,
    warm_target: _given(float, "Supervised start stops once greedy training accuracy reaches this (0: fixed steps)")
    = None,
    tau: _given(str, "Comma list of τ ≥ 1") = None,
    eta: _given(str, "Comma list of learning rates η > 0") = None,
    seeds: _given(int, "Number of seeds 0..N−1") = None,
    steps: _given(int, "Learner steps T per run") = None,
    prompts: _given(int, "Prompts per rollout batch B") = None,
    group: _given(int, "Completions per prompt n ≥ 2") = None,
    max_new_tokens: _given(int, "Completion length limit") = None,
    temperature: _given(float, "Sampling temperature > 0") = None,
    eps: _given(float, "Clip ε of (3)") = None,
    kappa: _given(float, "KL coefficient κ ≥ 0 to the initial policy") = None,
    optimizer: _given(LlmOptimizer, "Learner optimiser") = None,
    reuse: _given(LlmReuse, "Each of the τ steps uses the whole batch or one of τ slices") = None,
    pipeline: _given(LlmPipeline, "reuse (§3) or async (a rollout worker τ − 1 batches ahead)") = None,
    bias_every: _given(int, "A §7 staleness probe about every k steps; 0: never") = None,
    bias_lags: _given(str, "Probe lags: last (τ − 1), all, or a comma list") = None,
    micro_batch: _given(int, "Sequences per learner forward/backward, gradients accumulated (0: all)") = None,
    device: Annotated[str, typer.Option(help="torch device (cpu, cuda).")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads per run; tiny models run fastest on one.")] = 1,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bar on stderr.")] = True,
    executor: Annotated[str, typer.Option(help="Where the runs go: local, process (a pool) or ray.")] = "local",
    workers: Annotated[int | None, typer.Option(help="Pool processes or local Ray CPUs (default: all cores).")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (with --executor ray).")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Load a model directory whose weights are "
                                               "only pickle files (they can run code): trusted files only.")] = False,
):
    """Run GRPO (docs/theory.md §3: reuse or async) on a Llama-architecture model over τ × η × seed."""
    import torch

    from llm.sweep import configure, run_sweep
    from results import check_executor

    torch.set_num_threads(_at_least("--threads", threads, 1))
    check_executor(executor, workers, address)
    value = lambda choice: choice and choice.value  # noqa: E731
    config = configure(quick, size.value, model, device, allow_pickle,
                       task={"kind": value(task), "path": data and str(data), "digits": digits, "shots": shots,
                             "shot_format": value(shot_format)},
                       grid={"taus": tau and tuple(ints("--tau", tau, minimum=1)), "seeds": seeds, "steps": steps,
                             "etas": eta and tuple(floats("--eta", eta, positive=True))},
                       grpo={"prompts": prompts, "group": group, "max_new_tokens": max_new_tokens, "eps": eps,
                             "temperature": temperature, "kappa": kappa, "optimizer": value(optimizer),
                             "reuse": value(reuse), "pipeline": value(pipeline), "bias_every": bias_every,
                             "bias_lags": bias_lags, "micro_batch": micro_batch},
                       lift=lift, warm_target=warm_target)
    ds = run_sweep(config, out, progress=progress, executor=executor, workers=workers, address=address)
    typer.echo(f"wrote {out}: {dict(ds.sizes)}, {int((ds.nan_step >= 0).sum())} run(s) went NaN")


def _llm_constants(model, task, seed, as_json):
    """``repro constants --model``: :func:`llm.constants.estimate_constants` on its preset."""
    if task is not Task.arithmetic:
        raise typer.BadParameter(f"--model needs --task arithmetic, not {task.value}", param_hint="--task")
    from llm.constants import ConstantsConfig, constants_table, estimate_constants

    emit(estimate_constants(ConstantsConfig.preset(model or "tiny", seed), progress=True), as_json, constants_table)

# ---------------------------------------------------------------- analysis, advice, figures (issue 10)

StoreOption = Annotated[Path, typer.Option("--store", help="Results store (netCDF) with dims tau, eta, seed, step.")]
BootOption = Annotated[int, typer.Option("--boot", help="Bootstrap resamples of seeds per interval (≥ 10).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _analysis(store, n_boot):
    from analysis import analyze, load_sweep

    n_boot = _at_least("--boot", n_boot, 10)
    return analyze(load_sweep(store), n_boot=n_boot)


@app.command("analyze")
def analyze_command(store: StoreOption, n_boot: BootOption = 200, as_json: JsonOption = False):
    """Collapse events and census, the two-branch η_max(τ), t* survival, drift exponent, Theorem 1 and 2 rows,
    each with its interval, verdict and seeds needed (docs/theory.md §4–6)."""
    analysis = _analysis(store, n_boot)
    emit(analysis.summary(), as_json, lambda _: analysis.table())


@app.command("fit")
def fit_command(
    store: StoreOption,
    n_boot: BootOption = 200,
    as_json: JsonOption = False,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file (input of repro advise).")] = None,
):
    """c_loc and c_hor of the rule (36)–(38) from the two-branch boundary fit of η_max(τ), with intervals."""
    from analysis.advisor import constants_table, fitted_constants

    result = fitted_constants(_analysis(store, n_boot), store)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
    emit(result, as_json, constants_table)


@app.command("advise")
def advise_command(
    tau: Annotated[int, typer.Option(help="Staleness τ ≥ 1 of your pipeline.")],
    horizon: Annotated[int, typer.Option(help="Training horizon T ≥ 1 in learner steps.")],
    constants: Annotated[Path, typer.Option(help="JSON with c_loc and c_hor (repro fit --json) or r_clip, R and U.")],
    as_json: JsonOption = False,
):
    """Largest safe η by the two-constraint rule (36)–(38): min(c_loc/τ, c_hor/T), which binds, and the margin."""
    from analysis.advisor import advise, advice_table, read_constants

    c_loc, c_hor = read_constants(constants)
    emit(advise(_at_least("--tau", tau, 1), _at_least("--horizon", horizon, 1), c_loc, c_hor), as_json, advice_table)


@app.command("figures")
def figures_command(
    quick: Annotated[bool, typer.Option("--quick", help="Small grids (tests, CI): the same figures, faster.")] = False,
    only: Annotated[str | None, typer.Option(help="Redraw one figure kind (reward, phase, survival, drift, table2, "
                                                  "dynamics, bias, staleness, baselines) or only REPORT.md (report).")
                    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for the PNG and PDF figures and REPORT.md.")] = Path("figures/out"),
    runs: Annotated[Path, typer.Option(help="Folder of the sweep stores (reused when finished).")] = Path("runs"),
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Progress bars on stderr.")] = True,
    store: Annotated[list[Path] | None, typer.Option(
        help="Draw these stores instead (repeatable; named by file stem): a sweep, a TRL run, an imported log.")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        help="Processes for the llm runs, one torch thread each (default: every core; 1: in this process).")] = None,
):
    """Run or reuse every sweep of the plan (results/plan.py), then draw every figure and write REPORT.md."""
    from figures.report import NAMES, render_all
    from results import plan

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
        stores, ess_stores, log = plan.run_plan(quick, runs, progress, workers)
        for line in log:
            typer.echo(line, err=True)
    coverage = plan.KNOBS["quick" if quick else "full"]["coverage"]
    written = render_all(stores, out, only, ess_stores=ess_stores, progress=progress, coverage=coverage)
    typer.echo(f"wrote {len(written)} files to {out}")


# ---------------------------------------------------------------- integrations (issue 6)

Framework = enum.Enum("Framework", {name: name for name in (
    "trl", "verl", "areal", "prime-rl", "nemo-rl", "openrlhf", "skyrl", "roll", "pipelinerl", "slime", "miles",
    "tinker")})


@app.command("tau")
def tau_command(
    framework: Annotated[Framework, typer.Option(help="Framework whose config this is.")],
    config: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Its config: YAML, JSON, TOML or a launch "
                                                                           "script (its ${var} are expanded).")],
    trainer: Annotated[str | None, typer.Option(help="trl: grpo|async; verl: main|one-step-off|fully-async; "
                                                     "slime/miles: sync|async|fully-async (default: from the config).")
                       ] = None,
    processes: Annotated[int | None, typer.Option(help="Process count (TRL's generation_batch_size needs it).")] = None,
    accept_defaults: Annotated[bool, typer.Option("--accept-defaults", help="Accept a config that sets none of "
                                                                            "the framework's knobs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (tau, max_lag, unit, formula, "
                                                         "knobs, defaults, source, warnings).")] = False,
):
    """A framework's staleness knobs → the τ of docs/theory.md §3 in optimizer steps (input of `repro advise`)."""
    from integrations.staleness import translate

    result = translate(framework.value, config, processes=processes, trainer=trainer, accept_defaults=accept_defaults)
    emit(result.as_dict(), as_json, lambda _: result.text())


@app.command("import")
def import_command(
    framework: Annotated[Framework, typer.Option(help="Framework that wrote the log.")],
    log: Annotated[Path, typer.Option(exists=True, help="trainer_state.json, JSONL, JSON, CSV/TSV (W&B export) or a "
                                                        "TensorBoard event file or folder.")],
    out: Annotated[Path, typer.Option(help="Results store (netCDF) to write.")],
    config: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="The run's config: τ and the unit conversions (as `repro tau`).")] = None,
    tau: Annotated[int | None, typer.Option(min=1, help="τ of the run; else from --config or the log.")] = None,
    eta: Annotated[str | None, typer.Option(help="Learning rate η; the log's peak learning rate if absent.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the run, the store's seed coord.")] = 0,
    reward: Annotated[str | None, typer.Option(help="Log key of the training reward, if not the framework's.")] = None,
    run: Annotated[str | None, typer.Option(help="Run to read from a W&B export of several runs.")] = None,
    trainer: Annotated[str | None, typer.Option(help="With --config: as `repro tau --trainer`.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
):
    """Import a framework's metric log into a results store of one run, named as in docs/theory.md §6."""
    from integrations.logs import import_log
    from integrations.staleness import translate
    from results import write_atomic

    eta_value = None if eta is None else floats("--eta", eta, positive=True)
    if eta_value is not None and len(eta_value) != 1:
        raise typer.BadParameter(f"{eta!r} is not one number", param_hint="--eta")
    if trainer is not None and config is None:
        raise typer.BadParameter("--trainer needs --config", param_hint="--trainer")
    rule = None if config is None else translate(framework.value, config, trainer=trainer)
    result = import_log(log, framework.value, tau=tau, eta=eta_value and eta_value[0], seed=seed, staleness=rule,
                        reward=reward, run=run)
    write_atomic(result.dataset, out)
    emit(result.summary | {"out": str(out)}, as_json, lambda _: f"wrote {out}\n" + result.text())


@app.command("combine")
def combine_command(
    stores: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="Per-run stores to merge.")],
    out: Annotated[Path, typer.Option(help="Sweep store (netCDF) to write.")],
    trim: Annotated[bool, typer.Option("--trim", help="Keep only the steps every store has.")] = False,
    renumber_seeds: Annotated[bool, typer.Option("--renumber-seeds", help="Number each (τ, η) cell's runs 0, 1, … "
                                                                          "(their seeds kept in run_seed).")] = False,
):
    """Merge per-run stores (TRL callback, imported logs, sweep parts) into one sweep store on (τ, η, seed, step)."""
    from integrations.combine import write_combined

    ds = write_combined(stores, out, trim=trim, renumber_seeds=renumber_seeds)
    typer.echo(f"wrote {out}: {dict(ds.sizes)}")


@app.command("warn")
def warn_command(
    store: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Store of the run(s) to watch, or with "
                                                                          "--calibrate the sweep to calibrate on.")],
    thresholds: Annotated[Path, typer.Option(help="Thresholds JSON to read (or, with --calibrate, to write).")],
    calibrate: Annotated[bool, typer.Option("--calibrate",
                                            help="Set thresholds from the sweep's stable runs.")] = False,
    false_alarm: Annotated[float, typer.Option(help="With --calibrate: share of stable runs allowed to alarm.")] = 0.05,
    margin: Annotated[float, typer.Option(help="With --calibrate: thresholds sit this fraction above the stable "
                                               "runs' largest values.")] = 0.25,
    constants: Annotated[Path | None, typer.Option(
        exists=True, dir_okay=False, help="JSON with c_loc/c_hor or r_clip/R/U: the suggested η.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
):
    """Collapse early warning (docs/theory.md §5): alarms before t* from stale drift, drift, clip, ESS, cosines."""
    from analysis.warning import Thresholds, calibrate as fit_thresholds, runs_of, warn_store, warn_text
    from results import open_store as read

    ds = read(store, required=("reward",), dims=("tau", "eta", "seed", "step"))
    if calibrate:
        fitted = fit_thresholds(runs_of(ds), _finite("--false-alarm", false_alarm), margin=_finite("--margin", margin))
        thresholds.write_text(fitted.to_json() + "\n")
        return emit(json.loads(fitted.to_json()), as_json, lambda _: f"wrote {thresholds}: {fitted.active()}")
    if not thresholds.is_file():
        raise InputError(f"no thresholds file at {thresholds} (write one with --calibrate on a sweep)")
    limits = Thresholds.from_json(thresholds.read_text())
    extra = None if constants is None else json.loads(constants.read_text())
    rows = warn_store(ds, limits, extra)
    emit({"runs": rows}, as_json, lambda r: warn_text(r["runs"]))


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
