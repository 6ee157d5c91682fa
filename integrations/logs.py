"""Log adapters: TRL and verl metric logs → one run of the results store.

A log is a sequence of rows of logged scalars, one or more per learner step:
TRL's ``trainer_state.json`` (``log_history``), verl's file logger (JSONL rows
``{"step": s, "data": {...}}``), or any JSONL / CSV export of the same scalars
(W&B, TensorBoard). The rows become the variables of THEORY.md §6 in the
sweep layout ``SWEEP_DIMS`` (one τ, one η, one seed), named as in
:mod:`theory.metrics`, so ``repro fit`` and the figures read an imported run
as they read a sweep, and runs combine with ``xarray.combine_by_coords``.

Two conventions align a log with our step index t (the update θ_t → θ_{t+1}):

* both frameworks count ``global_step`` after the update, from 1: a log whose
  first step is 1 is shifted to start at t = 0;
* TRL logs ``reward`` only on the steps that generate a batch; the steps that
  reuse it carry its reward forward (§6: the reward of the batch consumed at t),
  so a reused batch is not mistaken for a missing, diverged reward.

The crosswalk follows /work/shared/PEERS.md ("Metric crosswalk"), checked
against TRL f2cd577 (``grpo_trainer.py`` ``_metrics``) and verl 1dda039
(``rollout_corr_helper.py``, whose ESS is ``1/mean(w̄²)`` with ``w̄ = w/mean(w)``,
i.e. our ``(Σw)²/(n Σw²)``).
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from results import to_dataset
from theory.metrics import DIAGNOSTICS, METRICS, SWEEP_DIMS

CROSSWALK = {
    "trl": {
        "reward": ("reward",),
        "val_reward": ("eval_reward",),
        "clip_frac": ("clip_ratio/region_mean", "clip_ratio"),
        # GRPOTrainer logs `kl` only with beta ≠ 0, and then it is the KL to the reference model.
        "kl_ref": ("kl",),
    },
    "verl": {
        "reward": ("critic/score/mean",),
        "clip_frac": ("actor/pg_clipfrac",),
        "ess": ("rollout_corr/rollout_is_eff_sample_size",),
        "kl_ref": ("actor/kl_loss", "critic/kl"),
    },
}
"""Framework → our name → their names, first present wins (the rest are kept under sanitized names)."""

LEARNING_RATE = {"trl": "learning_rate", "verl": "actor/lr"}
"""The scalar each framework logs its (scheduled) learning rate under; η defaults to its peak."""

TRL_ASYNC_KEYS = ("weight_sync_time_s", "buffer_qsize", "ratio")
"""Keys only ``AsyncGRPOTrainer`` logs: there ``kl`` is the drift KL to the vLLM sampler, not ``kl_ref``."""

STEP_KEYS = ("step", "global_step", "train/global_step", "training/global_step", "_step", "Step")
"""Column names that hold the learner step, first present wins."""

PREFIXES = ("train/",)
"""Prefixes that trackers add to training scalars (W&B ``train/reward``), stripped before mapping."""


def sanitize(name):
    """A metric name as a netCDF variable name: ``clip_ratio/low_mean`` → ``clip_ratio_low_mean``."""
    clean = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    return f"m_{clean}" if not clean or clean[0].isdigit() else clean


def _flatten(row, prefix=""):
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}/")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def read_rows(path):
    """The rows of a log as flat dicts: TRL ``trainer_state.json``, JSON list, JSONL or CSV."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no log file at {path}")
    if path.suffix.lower() in (".csv", ".tsv"):
        try:
            frame = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            raise ValueError(f"cannot read CSV log {path}: {str(error).splitlines()[0]}") from None
        return [{k: v for k, v in row.items() if not pd.isna(v)} for row in frame.to_dict("records")]
    text = path.read_text()
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        loaded = None
    if isinstance(loaded, dict) and isinstance(loaded.get("log_history"), list):
        rows = loaded["log_history"]
    elif isinstance(loaded, list):
        rows = loaded
    else:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise ValueError(f"{path} line {number} is not JSON (expected JSONL, JSON or CSV)") from None
    if not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{path}: every log row must be a JSON object of scalars")
    # verl's FileLogger writes {"step": s, "data": {metric: value}}
    rows = [{"step": row["step"], **row["data"]} if set(row) == {"step", "data"} else row for row in rows]
    return [_flatten(row) for row in rows]


def _number(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _steps(rows, path):
    key = next((k for k in STEP_KEYS if any(k in row for row in rows)), None)
    if key is None:
        return list(range(len(rows))), "row order"
    steps = []
    for number, row in enumerate(rows):
        step = _number(row.get(key))
        if step is None or not math.isfinite(step) or step != int(step) or step < 0:
            raise ValueError(f"{path} row {number}: {key} = {row.get(key)!r} is not a step number")
        steps.append(int(step))
    return steps, key


def import_log(path, framework, *, tau=None, eta=None, seed=0):
    """Read a TRL or verl metric log into a store Dataset of one run (dims :data:`SWEEP_DIMS`).

    Our §6 names come from :data:`CROSSWALK`; every other numeric scalar is kept under
    :func:`sanitize`'s name, and non-numeric ones are dropped and listed in the config attr.
    ``tau`` / ``eta`` default to a ``tau`` column / the peak ``learning_rate`` of the log.
    """
    if framework not in CROSSWALK:
        raise ValueError(f"unknown framework {framework!r}; choose one of {', '.join(CROSSWALK)}")
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} holds no log rows")
    steps, step_key = _steps(rows, path)
    table = {}
    for step, row in zip(steps, rows):
        merged = table.setdefault(step, {})
        for key, value in row.items():
            if key in STEP_KEYS:
                continue
            name = next((key[len(p):] for p in PREFIXES if key.startswith(p)), key)
            merged[name] = value if _number(value) is None else _number(value)  # later rows of a step win

    names = sorted({name for values in table.values() for name in values})
    crosswalk = dict(CROSSWALK[framework])
    if framework == "trl" and any(key in names for key in TRL_ASYNC_KEYS):
        del crosswalk["kl_ref"]
    dropped = sorted(n for n in names if any(_number(v.get(n)) is None for v in table.values() if n in v))
    renamed = {}
    for ours, theirs in crosswalk.items():
        found = next((name for name in theirs if name in names and name not in dropped), None)
        if found is not None:
            renamed[found] = ours
    for name in names:
        if name not in renamed and name not in dropped:
            renamed[name] = name if name in METRICS or name in DIAGNOSTICS else sanitize(name)
    clashes = sorted({v for v in renamed.values() if list(renamed.values()).count(v) > 1})
    if clashes:
        raise ValueError(f"{path}: several metrics map onto {', '.join(clashes)}; rename them in the log")

    ordered = sorted(table)
    variables = {
        ours: (("seed", "step"), np.array([[table[s].get(theirs, np.nan) for s in ordered]], dtype=float))
        for theirs, ours in renamed.items()
    }
    if "reward" in variables:
        variables["reward"] = ("seed", "step"), pd.DataFrame(variables["reward"][1]).ffill(axis=1).to_numpy()
    tau, tau_source = _run_value("tau", tau, variables, lambda v: v[-1], integer=True)
    eta, eta_source = _run_value("eta", eta, variables, np.max, key=renamed.get(LEARNING_RATE[framework]))
    for coord in ("tau", "eta", "seed"):  # a logged column of that name is the run's value, not a series
        variables.pop(coord, None)
    config = {
        "source": "imported log",
        "framework": framework,
        "log": str(path),
        "step_key": step_key,
        "tau": tau,
        "tau_source": tau_source,
        "eta": eta,
        "eta_source": eta_source,
        "renamed": {k: v for k, v in renamed.items() if k != v},
        "dropped": dropped,
    }
    first = 1 if ordered[0] == 1 and step_key != "row order" else 0
    config["step_shift"] = -first
    coords = {"tau": [tau], "eta": [eta], "seed": [seed], "step": [s - first for s in ordered]}
    variables = {name: (SWEEP_DIMS, values[None, None]) for name, (_, values) in variables.items()}
    return to_dataset(variables, coords, config, seed=seed)


def _run_value(name, given, variables, pick, *, integer=False, key=None):
    """τ or η of the run: as given, else read from the log (``key`` column), else an error."""
    if given is not None:
        return given, "given"
    column = variables.get(key or name)
    values = None if column is None else column[1][np.isfinite(column[1])]
    if values is None or values.size == 0:
        raise ValueError(f"the log does not record {name}; give --{name}")
    value = float(pick(values))
    if not value > 0 or (integer and value != int(value)):
        raise ValueError(f"the log's {key or name} = {value:g} is not a valid {name}; give --{name}")
    if integer:
        return int(value), "log"
    varying = np.ptp(values) > 0
    return value, f"log ({key or name}, peak of a schedule)" if varying else f"log ({key or name})"
