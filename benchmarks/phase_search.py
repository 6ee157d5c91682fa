"""Phase search over the ``graded`` substrate family: where collapses happen, of which kind, and whether there
t* ∝ 1/η independently of τ with ‖θ_{t*} − θ_0‖ constant (Theorem 2, docs/substrate.md).

Run: ``python benchmarks/phase_search.py --out runs/phase [--members base,adam] [--seeds 8] [--steps 1000]``.

Each member of :data:`synthetic.phase.MEMBERS` is swept on the coarse grid of :data:`synthetic.phase.COARSE`
(stores in ``--out``, reused when finished); then, per member, from :func:`analysis.events.collapse_events`:

* collapses / runs, and the census (drift / kick / absorption / unclassified);
* per τ, the median of η·t* over the collapsed runs (Theorem 2: the same for every τ), and the spread
  max/min of those medians across τ;
* the least-squares exponents of log t* = a + b log η + c log τ over the collapsed runs (theory: b = −1, c = 0;
  a quick look, uncensored: the analysis layer's survival fit is the verdict);
* the drift at collapse ‖θ_{t*} − θ_0‖: median and its relative spread (IQR/median) — Theorem 2: a constant R;
* U = max update_norm of the collapsed runs, so R/(U·η) can be set against t*;
* ``one-step`` collapses: those whose largest single move η‖u_t‖ before t* covers at least half of
  ‖θ_{t*} − θ_0‖ (a documented ad-hoc rule beside the census: the census compares the last updates with the
  median of the *earlier* ones, so a collapse within the first few steps, with no earlier update, falls through
  to ``drift``); and the steps taken before t* (nonzero updates).

``--json`` writes the table as JSON too.
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402

from analysis.events import collapse_events  # noqa: E402
from analysis.store import load_sweep, series  # noqa: E402
from synthetic.phase import MEMBERS, run_members  # noqa: E402


def summarize(ds):
    """The phase-search row of one member's store."""
    events = collapse_events(ds)
    taus, etas = ds.tau.values.astype(float), ds.eta.values.astype(float)
    collapsed = events.collapsed
    eta_grid = np.broadcast_to(etas[None, :, None], collapsed.shape)
    tau_grid = np.broadcast_to(taus[:, None, None], collapsed.shape)
    t_star = events.t_star
    row = {"runs": int(collapsed.size), "collapsed": int(collapsed.sum()), "census": events.census(),
           "probability": np.round(events.probability, 2).tolist(), "taus": taus.tolist(), "etas": etas.tolist()}
    ok = collapsed & np.isfinite(t_star) & (t_star > 0)
    row["eta_t_star_by_tau"] = {
        int(tau): float(np.median((eta_grid * t_star)[i][ok[i]])) if ok[i].any() else None
        for i, tau in enumerate(taus)}
    medians = [v for v in row["eta_t_star_by_tau"].values() if v]
    row["eta_t_star_spread"] = float(max(medians) / min(medians)) if len(medians) > 1 else None
    if ok.sum() >= 4 and np.unique(eta_grid[ok]).size > 1:
        design = np.column_stack([np.ones(ok.sum()), np.log(eta_grid[ok]), np.log(tau_grid[ok])])
        coef, *_ = np.linalg.lstsq(design, np.log(t_star[ok]), rcond=None)
        row["b"], row["c"] = float(coef[1]), float(coef[2]) if np.unique(tau_grid[ok]).size > 1 else None
    radius = events.radius[ok]
    radius = radius[np.isfinite(radius)]
    if radius.size:
        q1, median, q3 = np.percentile(radius, [25, 50, 75])
        row["radius_median"], row["radius_iqr_over_median"] = float(median), float((q3 - q1) / median)
    update = series(ds, "update_norm")
    if update is not None and ok.any():
        row["U_collapsed_max"] = float(np.nanmax(update[ok]))
        moves, steps = [], []
        for index in zip(*np.nonzero(ok)):
            before = update[index][: int(t_star[index]) + 1]
            moves.append(etas[index[1]] * np.nanmax(before) / events.radius[index])
            steps.append(int(np.sum(before > 0)))
        row["one_step"] = int(np.sum(np.asarray(moves) >= 0.5))
        row["steps_before_median"] = float(np.median(steps))
    return row


def table(rows):
    lines = [f"{'member':24}{'coll/runs':>10}{'drift':>6}{'kick':>6}{'abs':>6}{'uncl':>6}{'1-step':>7}{'steps':>6}"
             f"{'ηt* spread':>11}{'b':>7}{'c':>7}{'R med':>8}{'R IQR/med':>10}"]
    for name, r in rows.items():
        c = r["census"]
        fmt = lambda v, f: format(v, f) if isinstance(v, float) else f"{'–':>{f.split('.')[0]}}"  # noqa: E731
        lines.append(f"{name:24}{r['collapsed']:>5}/{r['runs']:<4}{c['drift']:>6}{c['kick']:>6}{c['absorption']:>6}"
                     f"{c['unclassified']:>6}{r.get('one_step', 0):>7}{fmt(r.get('steps_before_median'), '6.0f')}"
                     f"{fmt(r.get('eta_t_star_spread'), '11.2f')}{fmt(r.get('b'), '7.2f')}"
                     f"{fmt(r.get('c'), '7.2f')}{fmt(r.get('radius_median'), '8.2f')}"
                     f"{fmt(r.get('radius_iqr_over_median'), '10.2f')}")
    for name, r in rows.items():
        lines.append(f"{name}: collapse probability (rows τ = {r['taus']}, columns η = {r['etas']})")
        lines += ["    " + " ".join(f"{p:4.2f}" for p in row) for row in r["probability"]]
        lines.append(f"    median η·t* by τ: {r['eta_t_star_by_tau']}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/phase"))
    parser.add_argument("--members", default=",".join(MEMBERS))
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    overrides = {k: v for k, v in (("seeds", args.seeds), ("steps", args.steps)) if v is not None}
    paths = run_members(args.out, tuple(args.members.split(",")), **overrides)
    rows = {name: summarize(load_sweep(path)) for name, path in paths.items()}
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
