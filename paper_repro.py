"""`repro`: the command line of the toolkit. It only wires commands to library functions.

Every command validates its input once, here, and turns bad input into a
one-line error naming the bad value (exit code 2), never a traceback.
"""

import enum
import json
import math
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

# ---------------------------------------------------------------- synthetic sweeps (issue 3)

# ---------------------------------------------------------------- llm (issue 4)

# ---------------------------------------------------------------- analysis, advice, figures (issue 5)

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
