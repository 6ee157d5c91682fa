"""Collapse early warning on held-out runs: lead time before t* and false alarms (analysis/warning.py).

For each store given (sweeps of the project's engines, or any store on (tau, eta, seed, step)), the
thresholds are calibrated on the even seeds and evaluated on the odd ones, then the other way round.
Printed per store and split: collapses, the share warned ≥ 2 weight syncs (2τ steps) before t*, the
collapses that leave room for such a warning (t* ≥ 3τ) and the share of those warned, the median lead in
syncs, the false-alarm rate on stable runs, and which signals fired first. Goal (issue 13):
≥ 80 % of collapses warned ≥ 2 syncs ahead, ≤ 5 % false alarms.

    python benchmarks/bench_warning.py runs/synthetic-autoregressive-quick-….nc runs/llm-small-quick-….nc
"""

import json
import sys
from pathlib import Path

import numpy as np

from analysis.warning import calibrate, evaluate, runs_of
from results import open_store

GOAL = {"share_warned_by_lead": 0.80, "false_alarm_rate": 0.05}


def benchmark(stores, false_alarm=0.05, lead_syncs=2, margin=0.25):
    """``{store: [{split, thresholds, ...evaluate()}]}`` for every store path (calibrate on one seed parity)."""
    report = {}
    for path in stores:
        ds = open_store(path, required=("reward",), dims=("tau", "eta", "seed", "step"))
        seeds = np.arange(ds.sizes["seed"])
        rows = []
        for name, calibration, held_out in (("even→odd", seeds[0::2], seeds[1::2]),
                                            ("odd→even", seeds[1::2], seeds[0::2])):
            if not calibration.size or not held_out.size:
                continue
            try:
                thresholds = calibrate(runs_of(ds.isel(seed=calibration)), false_alarm, margin=margin)
            except ValueError as error:
                rows.append({"split": name, "error": str(error)})
                continue
            result = evaluate(runs_of(ds.isel(seed=held_out)), thresholds, lead_syncs)
            rows.append({"split": name, "thresholds": thresholds.active()} | result)
        report[str(path)] = rows
    return report


def table(report):
    lines = [f"{'store / split':44}{'coll.':>6}{'≥2 syncs':>10}{'warnable':>10}{'of those':>10}{'median':>8}"
             f"{'stable':>8}{'false':>7}  first signals"]
    for store, rows in report.items():
        for row in rows:
            label = f"{Path(store).name[:33]} {row['split']}"
            if "error" in row:
                lines.append(f"{label:44}  {row['error']}")
                continue
            lines.append(f"{label:44}{row['collapses']:6d}{row['share_warned_by_lead']:10.2f}{row['warnable']:10d}"
                         f"{row['share_of_warnable']:10.2f}{row['median_lead_syncs']:8.2f}{row['stable']:8d}"
                         f"{row['false_alarm_rate']:7.2f}  {row['first_signals']}")
    lines.append(f"goal: ≥ {GOAL['share_warned_by_lead']:.0%} warned ≥ 2 syncs ahead, ≤ {GOAL['false_alarm_rate']:.0%} "
                 "false alarms. warnable: collapses with t* ≥ 3τ (a sync to watch, then 2 of warning)")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: python benchmarks/bench_warning.py STORE.nc [STORE.nc ...] [--json]")
    paths = [p for p in sys.argv[1:] if p != "--json"]
    result = benchmark(paths)
    print(json.dumps(result, default=float) if "--json" in sys.argv else table(result))
