"""Log adapters: a framework's metric log → one run of the results store, hiding nothing.

Accepted: TRL's ``trainer_state.json``, JSONL (verl's file logger, Tinker's
``metrics.jsonl``, a W&B ``scan_history()`` dump), a JSON list, CSV/TSV (a
W&B export from the UI or of ``run.history()``), and TensorBoard event files
(a file or a folder, read with tensorboard's ``EventAccumulator``). The rows
become the variables of docs/theory.md §6 on the sweep dims (one τ, one η, one
seed), named by :data:`CROSSWALK` (keys read from each framework's code at the
commits of :data:`integrations.staleness.COMMITS`; docs/frameworks.md lists them).

What a log cannot hide:

* **divergence.** A reward that is null, NaN, ±inf or not a number marks the
  run diverged from that step: ``nan_step`` is that step and every series is
  NaN from it on, as in ``llm/`` (docs/theory.md §6). An *absent* reward (a row
  without the key) is the batch still being consumed (TRL logs it only when it
  generates) and carries the last reward forward; a logged bad value never does;
* **windows.** A log written every k > 1 steps (TRL's default ``logging_steps
  = 10``) keeps its real step coordinates, each the last step of its window,
  and is flagged (``log_window`` = k): its values are window means;
* **units.** Step coordinates are optimizer steps: a framework that logs once
  per weight version (verl, AReaL, NeMo RL, …) is scaled by the optimizer
  steps per logged step of its config (``config=``); without one the
  coordinates stay in the framework's unit and the summary says so. Realised
  staleness series (AReaL ``sample_staleness_*``, SkyRL ``async/staleness_*``,
  PipelineRL ``stats/lag``, ROLL ``scheduler/off_policy_ratio``, Tinker
  ``progress/batch − sampling_client/step_*``, miles
  ``rollout/fully_async/*_staleness``, PRIME-RL ``off_policy/*``) are converted
  the same way into ``staleness`` (mean) and ``staleness_max``/``staleness_min``.
"""

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from results import to_dataset
from theory.metrics import DIAGNOSTICS, METRICS, SWEEP_DIMS

FORMATS = ("TRL trainer_state.json, JSONL (verl file logger, Tinker metrics.jsonl, W&B scan_history), a JSON list, "
           "CSV/TSV (W&B UI or run.history() export) or a TensorBoard event file or folder")
"""The accepted formats, as every read error names them."""


@dataclass(frozen=True)
class Source:
    """How one framework logs: its keys for our §6 names, its step keys and where its versions count."""

    keys: dict
    """Our name → their names, first present wins; a name starting with ``^`` is a regex matched whole."""
    steps: tuple = (("step", "log"), ("_step", "log"), ("Step", "log"))
    """(key, kind) in order of preference: kind ``opt`` counts optimizer steps, ``log`` the framework's log unit."""
    first_step: int = 1
    """The step number the framework logs for the first update (1: counted after it, 0: before it)."""
    staleness_unit: str = "version"
    """What the realised-staleness keys count."""
    lr: tuple = ()
    """Keys of the logged (scheduled) learning rate; η defaults to its peak."""


_EVAL = ("eval_", "eval/", "val/", "val-core/", "val-aux/", "validation/", "test/", "test_")
"""Prefixes of evaluation metrics: rows holding only these belong to the weights after their step."""

CROSSWALK = {
    # trainer_state.json names, then transformers' WandbCallback / TensorBoardCallback names (train/…, eval/…)
    "trl": Source({"reward": ("reward", "train/reward"), "val_reward": ("eval_reward", "eval/reward"),
                   "clip_frac": ("clip_ratio/region_mean", "train/clip_ratio/region_mean", "clip_ratio",
                                 "train/clip_ratio"),
                   # GRPOTrainer logs `kl` only with beta ≠ 0, and then it is the KL to the reference model.
                   "kl_ref": ("kl", "train/kl")},
                  steps=(("step", "opt"), ("train/global_step", "opt"), ("global_step", "opt"), ("_step", "opt"),
                         ("Step", "opt")), lr=("learning_rate", "train/learning_rate"),
                  staleness_unit="optimizer step"),
    "verl": Source({"reward": ("critic/score/mean",), "val_reward": (r"^val-core/.+/reward/mean@1$",),
                    "clip_frac": ("actor/pg_clipfrac",), "ess": ("rollout_corr/rollout_is_eff_sample_size",),
                    "kl_ref": ("actor/kl_loss", "critic/kl")},
                   steps=(("step", "log"), ("training/global_step", "log"), ("_step", "log"), ("Step", "log")),
                   lr=("actor/lr",)),
    "areal": Source({"reward": ("ppo_actor/task_reward/avg",), "clip_frac": ("ppo_actor/update/clip_ratio/avg",),
                     "staleness": ("ppo_actor/update/version_stats/sample_staleness_theta_avg",),
                     "staleness_max": ("ppo_actor/update/version_stats/sample_staleness_theta_max",),
                     "staleness_min": ("ppo_actor/update/version_stats/sample_staleness_theta_min",)},
                    first_step=0),
    "prime-rl": Source({"reward": (r"^train/agg/effective/[^/]+/reward/mean$", r"^train/agg/all/[^/]+/reward/mean$"),
                        "staleness": ("off_policy/mean",), "staleness_max": ("off_policy/max",)},
                       staleness_unit="trainer step (one optimizer step)"),
    "nemo-rl": Source({"reward": ("train/reward",), "val_reward": ("validation/accuracy",)}, lr=("train/lr",)),
    "openrlhf": Source({"reward": ("train/reward",), "clip_frac": ("train/ppo_clip_ratio",), "kl_ref": ("train/kl",)},
                       steps=(("train/global_step", "log"), ("global_step", "log"), ("step", "log"),
                              ("_step", "log"), ("Step", "log"))),
    "skyrl": Source({"reward": ("reward/avg_raw_reward",), "val_reward": ("eval/all/avg_score",),
                     "clip_frac": ("policy/clip_ratio",), "kl_ref": ("policy/policy_kl",),
                     "staleness": ("async/staleness_mean",), "staleness_max": ("async/staleness_max",),
                     "staleness_min": ("async/staleness_min",)}, staleness_unit="trainer step"),
    "roll": Source({"reward": ("critic/score/mean",), "clip_frac": ("actor/ppo_ratio_clipfrac",),
                    "staleness": ("scheduler/off_policy_ratio",)}, first_step=0, staleness_unit="pipeline step"),
    "pipelinerl": Source({"reward": ("rl/reward",), "ess": ("rl/ess",),
                          "clip_frac": ("rl/clamp_log_ratio_new_old_indicator",), "kl_ref": ("rl/kl",),
                          "staleness": ("stats/lag_mean", "stats/lag"), "staleness_max": ("stats/lag_max",),
                          "staleness_min": ("stats/lag_min",)},
                         steps=(("stats/completed_steps", "opt"), ("step", "opt"), ("_step", "opt"), ("Step", "opt")),
                         staleness_unit="sample", lr=("stats/lr",)),
    "miles": Source({"reward": ("rollout/raw_reward",), "clip_frac": ("train/pg_clipfrac",),
                     "kl_ref": ("train/kl_loss",), "staleness": ("rollout/fully_async/avg_staleness",),
                     "staleness_max": ("rollout/fully_async/max_staleness",)},
                    steps=(("train/step", "opt"), ("rollout/step", "log"), ("step", "log"), ("_step", "log"),
                           ("Step", "log")), first_step=0, staleness_unit="rollout"),
    "tinker": Source({"reward": ("env/all/reward/total",), "val_reward": ("test/env/all/reward/total",),
                      "staleness": ("sampling_client/step_mean",), "staleness_max": ("sampling_client/step_min",),
                      "staleness_min": ("sampling_client/step_max",)},
                     steps=(("step", "log"), ("progress/batch", "log"), ("_step", "log"), ("Step", "log")),
                     first_step=0, staleness_unit="training step", lr=("optim/lr",)),
}
"""Framework → how its logs name our §6 variables (docs/frameworks.md, "import crosswalk")."""
CROSSWALK["slime"] = CROSSWALK["miles"]

TRL_ASYNC_KEYS = ("weight_sync_time_s", "buffer_qsize", "ratio", "train/weight_sync_time_s", "train/buffer_qsize",
                  "train/ratio")
"""Keys only ``AsyncGRPOTrainer`` logs: there ``kl`` is the drift KL to the vLLM sampler, not ``kl_ref``."""

SERIES_OF_STEP = ("staleness", "staleness_max", "staleness_min")
"""Our names whose values are lags, converted to optimizer steps."""


def sanitize(name):
    """A metric name as a netCDF variable name: ``clip_ratio/low_mean`` → ``clip_ratio_low_mean``."""
    clean = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
    return f"m_{clean}" if not clean or clean[0].isdigit() else clean


# ---------------------------------------------------------------- reading


def _flatten(row, prefix=""):
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}/")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass
class _Log:
    rows: list
    format: str
    notes: list = field(default_factory=list)
    logging_steps: int | None = None


def _error(path, what):
    return ValueError(f"{path}: {what}; accepted: {FORMATS}")


def _check_records(file):
    """Walk the TFRecord framing (length, CRC, data, CRC) of an event file; a cut record means a truncated file."""
    data = file.read_bytes()
    offset, records = 0, 0
    while offset < len(data):
        if offset + 12 > len(data):
            break
        length = int.from_bytes(data[offset:offset + 8], "little")
        if offset + 12 + length + 4 > len(data):
            break
        offset += 12 + length + 4
        records += 1
    if offset != len(data):
        raise _error(file, f"truncated: record {records + 1} is cut at byte {len(data)} (a crashed writer?)")


def _tensorboard(path):
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        raise ValueError("reading TensorBoard event files needs tensorboard: "
                         "pip install 'staleness-repro[tb]'") from None

    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if "tfevents" in p.name and p.is_file())
    if not files:
        raise _error(path, "no TensorBoard event file (events.out.tfevents.*) in this folder")
    by_step = {}
    for file in files:
        _check_records(file)
        try:
            accumulator = EventAccumulator(str(file), size_guidance={"scalars": 0, "tensors": 0}).Reload()
        except Exception as error:  # the reader raises DataLossError and friends for damaged files
            raise _error(file, f"cannot read the event file ({type(error).__name__})") from None
        tags = accumulator.Tags()
        for tag in tags.get("scalars", []):
            for event in accumulator.Scalars(tag):
                by_step.setdefault(event.step, {})[tag] = event.value
        for tag in tags.get("tensors", []):
            for event in accumulator.Tensors(tag):
                value = np.frombuffer(event.tensor_proto.tensor_content, dtype=np.float32)
                if value.size == 1:
                    by_step.setdefault(event.step, {})[tag] = float(value[0])
                elif event.tensor_proto.float_val:
                    by_step.setdefault(event.step, {})[tag] = float(event.tensor_proto.float_val[0])
    if not by_step:
        raise _error(path, "the event file holds no scalars (empty or truncated before its first record)")
    return _Log([{"step": step, **values} for step, values in sorted(by_step.items())], "TensorBoard")


def _csv(path, text, run):
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        table = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as error:
        raise _error(path, f"cannot read the CSV ({error})") from None
    if not table or not table[0]:
        raise _error(path, "the CSV has no header")
    header, body = table[0], table[1:]
    columns = {i: name for i, name in enumerate(header) if not name.endswith(("__MIN", "__MAX"))}
    named = {i: name.split(" - ", 1) for i, name in columns.items() if " - " in name}
    notes = []
    fmt = "CSV"
    if named:  # the W&B UI's export: "Step", "<run> - <metric>", "<run> - <metric>__MIN", "<run> - <metric>__MAX"
        runs = sorted({name[0] for name in named.values()})
        if run is None and len(runs) > 1:
            raise ValueError(f"{path} is a W&B export of {len(runs)} runs ({', '.join(runs[:4])}); give --run NAME")
        run = run if run is not None else runs[0]
        if run not in runs:
            raise ValueError(f"{path} has no run {run!r} (runs: {', '.join(runs[:6])})")
        columns = {i: (named[i][1] if i in named else name) for i, name in columns.items()
                   if i not in named or named[i][0] == run}
        fmt, notes = "W&B UI CSV", [f"W&B run {run}"]
    rows = []
    for number, cells in enumerate(body, 2):
        if len(cells) != len(header):
            if not any(cells):
                continue
            raise _error(path, f"row {number} has {len(cells)} cells, the header {len(header)} (truncated?)")
        rows.append({name: cells[i] for i, name in columns.items() if cells[i] != ""})
    return _Log(rows, fmt, notes)


def read_log(path, run=None):
    """The rows of a log as flat dicts of raw values (absent keys absent, logged NaN/null kept), and its format."""
    path = Path(path)
    if path.is_dir() or "tfevents" in path.name:
        if not path.exists():
            raise FileNotFoundError(f"no log at {path}")
        return _tensorboard(path)
    if not path.is_file():
        raise FileNotFoundError(f"no log file at {path}")
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        raise _error(path, "binary file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _error(path, "not UTF-8 text") from None
    if not text.strip():
        raise _error(path, "empty file")
    if path.suffix.lower() in (".csv", ".tsv"):
        return _csv(path, text, run)
    try:
        loaded = json.loads(text)
    except json.JSONDecodeError:
        loaded = None
    log = _Log([], "JSONL")
    if isinstance(loaded, dict) and isinstance(loaded.get("log_history"), list):
        log = _Log(loaded["log_history"], "TRL trainer_state.json",
                   logging_steps=loaded.get("logging_steps") if isinstance(loaded.get("logging_steps"), int) else None)
    elif isinstance(loaded, list):
        log = _Log(loaded, "JSON list")
    elif isinstance(loaded, dict):
        log = _Log([loaded], "JSONL")
    else:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                log.rows.append(json.loads(line))
            except json.JSONDecodeError:
                if number == 1 and "," in line:
                    raise _error(path, "line 1 is neither JSON nor, by its suffix, CSV (name the file .csv)") from None
                raise _error(path, f"line {number} is not JSON (truncated?)") from None
    if not all(isinstance(row, dict) for row in log.rows):
        raise _error(path, "every log row must be a JSON object of scalars")
    # verl's FileLogger writes {"step": s, "data": {metric: value}}
    log.rows = [_flatten({"step": r["step"], **r["data"]} if set(r) == {"step", "data"} and isinstance(r["data"], dict)
                         else r) for r in log.rows]
    return log


# ---------------------------------------------------------------- values


def _value(raw):
    """A logged value → float (NaN/inf kept), or None when it is not a number (null, text, a list)."""
    if isinstance(raw, bool):
        return float(raw)
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw.strip())
        except ValueError:
            return None
    return None


def _step_of(row, source, path, number):
    for key, kind in source.steps:
        if key in row:
            value = _value(row[key])
            if value is None or not math.isfinite(value) or value != int(value) or value < 0:
                raise _error(path, f"row {number}: {key} = {row[key]!r} is not a step number")
            return int(value), kind, key
    return None


def _match(names, candidates):
    for candidate in candidates:
        if candidate.startswith("^"):
            found = sorted(n for n in names if re.fullmatch(candidate[1:].rstrip("$"), n))
            if len(found) > 1:
                raise ValueError(f"several keys match {candidate}: {', '.join(found[:4])}; give --reward KEY")
            if found:
                return found[0]
        elif candidate in names:
            return candidate
    return None


@dataclass
class ImportedLog:
    """What ``repro import`` reports: the store and every choice made on the way."""

    dataset: object
    summary: dict

    def text(self):
        s = self.summary
        lines = [f"{s['format']}: {s['steps']} steps ({s['step_unit']}s), τ = {s['tau']}, η = {s['eta']:g}",
                 "mapped: " + (", ".join(f"{ours} ← {theirs}" for ours, theirs in s["mapped"].items()) or "nothing")]
        if s["nan_step"] >= 0:
            lines.append(f"DIVERGED at step {s['nan_step']}: {s['divergence']}; every series is NaN from there")
        lines += [f"warning: {w}" for w in s["warnings"]]
        return "\n".join(lines)


def import_log(path, framework, *, tau=None, eta=None, seed=0, staleness=None, reward=None, run=None):
    """Read a framework's metric log into a store Dataset of one run (dims :data:`SWEEP_DIMS`).

    ``staleness``: the :class:`integrations.staleness.Staleness` of the run's config (τ and the unit
    conversions); ``tau``/``eta`` override it / the log's ``tau`` column and peak learning rate;
    ``reward``: the key holding the training reward when the crosswalk's does not fit; ``run``:
    which run of a multi-run W&B export. Every other numeric scalar is kept under :func:`sanitize`'s name.
    """
    if framework not in CROSSWALK:
        raise ValueError(f"unknown framework {framework!r}; choose one of {', '.join(CROSSWALK)}")
    source = CROSSWALK[framework]
    log = read_log(path, run)
    if not log.rows:
        raise _error(path, "no log rows")
    per_log = staleness.steps_per_log_step if staleness is not None else 1.0
    per_unit = staleness.steps_per_unit if staleness is not None else None
    warnings = list(log.notes)

    # 1. rows → {framework step: merged values}, training rows and evaluation-only rows apart
    train, evals, kinds, step_keys = {}, {}, set(), set()
    for number, row in enumerate(log.rows, 1):
        found = _step_of(row, source, path, number)
        if found is None:
            found = (number - 1 + source.first_step, "log", "row order")
        step, kind, key = found
        kinds.add(kind)
        step_keys.add(key)
        values = {k: v for k, v in row.items() if k not in dict(source.steps) and k not in ("_runtime", "_timestamp")}
        if not values:
            continue
        scaled = step if kind == "opt" else step * per_log
        target = evals if all(k.startswith(_EVAL) for k in values) else train
        target.setdefault(scaled, {}).update(values)
    if not train:
        raise _error(path, "no training rows (only evaluation metrics)")
    if kinds == {"opt", "log"} and staleness is None:
        keys = ", ".join(sorted(step_keys))
        raise ValueError(f"{path} counts rows in optimizer steps and in {framework}'s own unit ({keys}): give --config "
                         "so both go on optimizer steps")
    names = sorted({k for values in train.values() for k in values} | {k for values in evals.values() for k in values})

    mapped = {}
    for ours, theirs in source.keys.items():
        if framework == "trl" and ours == "kl_ref" and any(k in names for k in TRL_ASYNC_KEYS):
            continue
        found = _match(names, (reward,) if ours == "reward" and reward else theirs)
        if found is not None:
            mapped[ours] = found
    if "reward" not in mapped:
        scores = {name: sum(_match(names, keys) is not None for keys in other.keys.values())
                  for name, other in CROSSWALK.items() if name != framework}
        best = max(scores, key=scores.get)
        looks = f"; it reads as a {best} log" if scores[best] else ""
        wanted = reward or ", ".join(source.keys["reward"])
        raise ValueError(f"{path} holds no {framework} reward ({wanted}){looks}; give --reward KEY")

    # 2. step coordinates: first logged update → t = 0, in optimizer steps where the unit is known
    offset = source.first_step * (1 if kinds == {"opt"} else per_log)
    ordered = sorted(train)
    if ordered[0] < offset:
        warnings.append(f"steps start at {ordered[0]:g}, before {framework}'s first logged step {source.first_step}: "
                        "read as counted before each update")
        offset = ordered[0]
    coords = [s - offset for s in ordered]
    spacing = np.diff(ordered)
    native = per_log if kinds != {"opt"} else 1.0
    window = log.logging_steps or (int(np.median(spacing) / native) if spacing.size else 1)
    if window > 1:
        warnings.append(f"rows are logged every {window} steps: values are means over each window, placed at its "
                        f"last step (TRL's logging_steps = {window}?)")
    step_unit = "optimizer step"
    if "log" in kinds and staleness is None and framework not in ("trl", "prime-rl", "pipelinerl"):
        step_unit = f"{framework} step"
        warnings.append(f"step coordinates are {framework}'s logged steps, not optimizer steps: give --config to "
                        f"convert them (and the staleness series)")

    # 3. the reward: absent → the batch still consumed (carried); null/NaN/inf/text → diverged from that step
    reward_key, diverged, divergence, last, carried = mapped["reward"], None, "", None, 0
    rewards = np.full(len(ordered), np.nan)
    for i, step in enumerate(ordered):
        if reward_key in train[step]:
            raw = train[step][reward_key]
            value = _value(raw)
            if value is None or not math.isfinite(value):
                diverged, divergence = i, f"{reward_key} = {raw!r}"
                break
            last = value
        elif last is None:
            continue
        else:
            carried += 1
        rewards[i] = last
    first = int(np.argmax(np.isfinite(rewards))) if np.isfinite(rewards).any() else None
    if first is None:
        raise ValueError(f"{path}: {reward_key} is never a number"
                         + (f" ({divergence}: the run diverged before its first reward)" if divergence else ""))
    if carried:
        warnings.append(f"{carried} step(s) log no {reward_key}: the last batch's reward is carried to them")

    # 4. every other series; evaluation rows go to the weights after their step
    variables, non_numeric, text = {}, {}, []
    ours_of = {theirs: ours for ours, theirs in mapped.items()}
    for name in names:
        if name == reward_key:
            continue
        series = np.full(len(ordered), np.nan)
        bad = 0
        for table, shift in ((train, 0), (evals, per_log)):
            for step, values in table.items():
                if name not in values:
                    continue
                value = _value(values[name])
                if value is None:
                    bad += 1
                    continue
                index = min(int(np.searchsorted(ordered, step + shift)), len(ordered) - 1)
                series[index] = value
        if bad and np.isfinite(series).any():
            non_numeric[name] = bad
        elif bad:
            text.append(name)
        if np.isfinite(series).any() or name in ours_of:
            target = ours_of.get(name) or (name if name in METRICS or name in DIAGNOSTICS else sanitize(name))
            if target in variables or target == "reward":
                raise ValueError(f"{path}: several metrics map onto {target}; rename them in the log")
            variables[target] = series
    if non_numeric:
        warnings.append("non-numeric values read as missing: "
                        + ", ".join(f"{k} ({n})" for k, n in non_numeric.items()))
    if text:
        warnings.append("text columns dropped: " + ", ".join(text))
    variables["reward"] = rewards

    # 5. realised staleness, into optimizer steps
    if framework == "tinker" and "progress/batch" in names:
        batch = variables.pop(sanitize("progress/batch"), None)
        for name in SERIES_OF_STEP:
            if name in variables and batch is not None:
                variables[name] = batch - variables[name]
    stale = [n for n in SERIES_OF_STEP if n in variables]
    if stale:
        factor = per_unit if per_unit is not None else (1.0 if framework in ("trl", "prime-rl") else None)
        if factor is None:
            for name in stale:
                variables[sanitize(mapped[name])] = variables.pop(name)
            warnings.append(f"the staleness series count {source.staleness_unit}s: give --config to convert them to "
                            "optimizer steps (kept under their own names)")
        else:
            for name in stale:
                variables[name] = variables[name] * factor

    tau, tau_source = _run_value("tau", tau if tau is not None else (staleness.tau if staleness else None),
                                 variables, lambda v: v[-1], integer=True)
    if staleness is not None and tau_source == "given" and tau == staleness.tau:
        tau_source = f"config ({staleness.framework} {staleness.trainer})"
    lr_key = _match(names, source.lr)
    eta, eta_source = _run_value("eta", eta, variables, np.max, key=sanitize(lr_key) if lr_key else None)
    for coord in ("tau", "eta", "seed"):  # a logged column of that name is the run's value, not a series
        variables.pop(coord, None)

    nan_step = -1
    if diverged is not None:
        nan_step = int(coords[diverged])
        for values in variables.values():
            values[diverged:] = np.nan
    config = {
        "source": "imported log", "framework": framework, "log": str(path), "format": log.format,
        "step_keys": sorted(step_keys), "step_unit": step_unit, "step_shift": -offset, "log_window": window,
        "tau": tau, "tau_source": tau_source, "eta": eta, "eta_source": eta_source, "mapped": mapped,
        "nan_step": nan_step, "divergence": divergence, "reward_carried": carried, "non_numeric": non_numeric,
        "dropped": text,
        "warnings": warnings, "staleness_config": staleness.as_dict() if staleness is not None else None,
    }
    grid = {"tau": [tau], "eta": [eta], "seed": [seed], "step": coords}
    data = {name: (SWEEP_DIMS, values[None, None, None]) for name, values in variables.items()}
    data["nan_step"] = (SWEEP_DIMS[:3], np.array([[[nan_step]]]))
    ds = to_dataset(data, grid, config, seed=seed)
    summary = {"format": log.format, "steps": len(coords), "step_unit": step_unit, "tau": tau, "eta": eta,
               "mapped": mapped, "nan_step": nan_step, "divergence": divergence, "log_window": window,
               "variables": sorted(ds.data_vars), "warnings": warnings}
    return ImportedLog(ds, summary)


def _run_value(name, given, variables, pick, *, integer=False, key=None):
    """τ or η of the run: as given, else read from the log (``key`` column), else an error."""
    if given is not None:
        return given, "given"
    column = variables.get(key or name)
    values = None if column is None else column[np.isfinite(column)]
    if values is None or values.size == 0:
        raise ValueError(f"the log does not record {name}; give --{name}" + (" or --config" if name == "tau" else ""))
    value = float(pick(values))
    if not value > 0 or (integer and value != int(value)):
        raise ValueError(f"the log's {key or name} = {value:g} is not a valid {name}; give --{name}")
    if integer:
        return int(value), "log"
    varying = np.ptp(values) > 0
    return value, f"log ({key or name}, peak of a schedule)" if varying else f"log ({key or name})"
