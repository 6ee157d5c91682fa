"""Collapse early warning (analysis/warning.py) on planted ballistic runs, and `repro warn`."""

import json
from pathlib import Path

import numpy as np
import pytest

from analysis.warning import (EarlyWarning, Run, Thresholds, calibrate, evaluate, runs_of, scan, signal_series,
                              suggest_eta)
from results import to_dataset, write_atomic
from theory.rule import safe_learning_rate

U, R, STEPS = 2.0, 10.0, 200


def planted(tau, eta, seed):
    """Ballistic drift ‖θ_t − θ_0‖ = Uηt (+ noise); collapse (reward 0) once it passes R (docs/theory.md (33)–(34))."""
    rng = np.random.default_rng(seed)
    t = np.arange(STEPS)
    drift = U * eta * t * (1 + 0.01 * rng.standard_normal(STEPS))
    crossed = np.flatnonzero(drift >= R)
    t_star = int(crossed[0]) if crossed.size else -1
    reward = np.full(STEPS, 0.5) + 0.01 * rng.standard_normal(STEPS)
    if t_star >= 0:
        reward[t_star:] = 0.0
    series = {"reward": reward, "drift": drift, "stale_drift": U * eta * (t % tau),
              "update_norm": np.full(STEPS, U), "raw_grad_cos": 0.05 * rng.standard_normal(STEPS)}
    return Run(series, tau, eta, t_star, f"τ={tau},η={eta:g},seed={seed}")


def world(seeds):
    # η·T·U = 400η: η ≤ 0.02 never reaches R = 10 in 200 steps; η ≥ 0.04 collapses at t* ≈ R/(Uη)
    return [planted(tau, eta, seed) for tau in (1, 2, 4) for eta in (0.005, 0.01, 0.02, 0.04, 0.08) for seed in seeds]


def test_planted_collapses_are_warned_ahead_and_stable_runs_are_not():
    calibration, held_out = world(range(0, 8, 2)), world(range(1, 8, 2))
    thresholds = calibrate(calibration, false_alarm=0.05, margin=0.1)
    # the drift threshold is 1.1 × the stable runs' largest drift, ≈ 1.1·U·0.02·199 ≈ 8.8 < R
    assert 8.5 < thresholds.drift < R
    result = evaluate(held_out, thresholds, lead_syncs=2)
    assert result["collapses"] == 24 and result["stable"] == 36
    assert result["false_alarm_rate"] <= 0.1 and result["warned"] == 24
    # the drift alarms (R − threshold)/(Uη) steps before t*; at τ > 1 the stale drift (ητU > the stable runs'
    # largest) alarms at the first stale step already
    for run in held_out:
        if run.t_star >= 0:
            alarm = scan(run.series, run.tau, run.eta, thresholds)
            signals = signal_series(run.series, run.tau)
            crossing = np.zeros(STEPS, dtype=bool)
            for name, threshold in thresholds.active().items():
                crossing |= np.nan_to_num(signals[name], nan=-np.inf) >= threshold
            assert alarm.step == int(np.flatnonzero(crossing)[0]) < run.t_star


def test_the_online_detector_alarms_where_the_scan_does():
    run = planted(2, 0.08, 3)
    thresholds = Thresholds(drift=6.0, stale_drift=5.0)
    online = EarlyWarning(thresholds, run.tau, run.eta, STEPS)
    alarms = [online.update(t, **{k: v[t] for k, v in run.series.items() if k != "reward"}) for t in range(STEPS)]
    first = next(a for a in alarms if a is not None)
    assert first == scan(run.series, run.tau, run.eta, thresholds)
    assert first.step == int(np.flatnonzero(run.series["drift"] >= 6.0)[0]) and set(first.signals) == {"drift"}


def test_persist_needs_consecutive_crossings():
    series = {"clip_frac": np.array([0.0, 0.5, 0.0, 0.5, 0.5, 0.5, 0.0])}
    assert scan(series, 1, 1e-3, Thresholds(clip_frac=0.4)).step == 1
    assert scan(series, 1, 1e-3, Thresholds(clip_frac=0.4, persist=3)).step == 5


def test_drift_ahead_carries_the_drift_two_syncs_at_its_recent_pace():
    drift = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 4.0, 4.0, 3.0])
    ahead = signal_series({"drift": drift}, tau=2)["drift_ahead"]
    # pace over the last max(τ, 4) = 4 steps, never negative, carried 2τ = 4 steps
    np.testing.assert_allclose(ahead, [np.nan] * 4 + [8.0, 7.0, 6.0, 5.0, 4.0, 3.0])


def test_signals_cosine_is_the_mean_over_a_sync_cycle_and_ess_becomes_a_loss():
    signals = signal_series({"raw_grad_cos": np.array([1.0, 0.0, 1.0, 1.0]), "ess": np.array([1.0, 0.5, 0.2, 0.1]),
                             "grad_cos": np.array([0.9, 0.9, 0.9, 0.9])}, tau=2)
    np.testing.assert_allclose(signals["cosine"], [np.nan, 0.5, 0.5, 1.0])  # raw_grad_cos preferred over grad_cos
    np.testing.assert_allclose(signals["ess_loss"], [0.0, 0.5, 0.8, 0.9])


def test_suggested_eta_follows_the_rule():
    thresholds = Thresholds(drift=8.0, stale_drift=1.0)
    eta, how = suggest_eta(4, 1000, 0.1, 50, None, thresholds, {"c_loc": 0.2, "c_hor": 30.0})
    assert eta == safe_learning_rate(4, 1000, 0.2, 30.0).eta_max and "horizon binds" in how
    # from the run: U = its largest update, r_clip and R = the thresholds → c_loc = 1/2, c_hor = 8/2
    eta, _ = suggest_eta(4, 1000, 0.1, 50, np.array([1.0, 2.0, np.nan]), thresholds, {})
    assert eta == pytest.approx(min(0.5 / 4, 4.0 / 1000))
    eta, how = suggest_eta(4, 1000, 0.1, 49, None, Thresholds(clip_frac=0.3), {})
    assert eta == pytest.approx(0.1 * 50 / 1000) and "horizon" in how


def test_calibration_keeps_false_alarms_on_its_own_stable_runs():
    runs = world(range(6))
    thresholds = calibrate(runs, false_alarm=0.05)
    stable = [run for run in runs if run.t_star < 0]
    alarms = sum(scan(run.series, run.tau, run.eta, thresholds) is not None for run in stable)
    assert alarms <= 0.05 * len(stable)
    with pytest.raises(ValueError, match="at least two stable runs"):
        calibrate([run for run in runs if run.t_star >= 0])


@pytest.mark.parametrize("text, message", [('{"drift": -1}', "drift = -1"), ('{"speed": 1}', "unknown threshold"),
                                           ('{"persist": 0}', "persist = 0"), ("[1]", "JSON object")])
def test_bad_thresholds(text, message):
    with pytest.raises(ValueError, match=message):
        Thresholds.from_json(text)
    assert Thresholds.from_json(Thresholds(drift=2.0).to_json()) == Thresholds(drift=2.0)


def store_of(runs, path):
    taus = sorted({r.tau for r in runs})
    etas = sorted({r.eta for r in runs})
    seeds = sorted({int(r.label.split("seed=")[1]) for r in runs})
    names = ("reward", "drift", "stale_drift", "update_norm", "raw_grad_cos")
    arrays = {n: np.full((len(taus), len(etas), len(seeds), STEPS), np.nan) for n in names}
    for r in runs:
        idx = (taus.index(r.tau), etas.index(r.eta), seeds.index(int(r.label.split("seed=")[1])))
        for n in names:
            arrays[n][idx] = r.series[n]
    ds = to_dataset({n: (("tau", "eta", "seed", "step"), a) for n, a in arrays.items()},
                    {"tau": taus, "eta": etas, "seed": seeds, "step": np.arange(STEPS)}, {"source": "planted"}, 0)
    write_atomic(ds, path)
    return ds


def test_runs_of_a_store_match_the_planted_runs(tmp_path):
    runs = world(range(2))
    ds = store_of(runs, tmp_path / "w.nc")
    from_store = {r.label: r for r in runs_of(ds)}
    for run in runs:  # the analysis knows t* to the sync: the reward of a batch is logged once per τ steps
        found = from_store[run.label].t_star
        assert (found >= 0) == (run.t_star >= 0) and (run.t_star < 0 or run.t_star - run.tau < found <= run.t_star)


def test_cli_calibrates_then_warns(repro, tmp_path):
    store_of(world(range(0, 8, 2)), tmp_path / "calibration.nc")
    store_of(world(range(1, 8, 2)), tmp_path / "held_out.nc")
    thresholds = tmp_path / "thresholds.json"
    code, out, err = repro("warn", "--store", tmp_path / "calibration.nc", "--thresholds", thresholds, "--calibrate",
                           "--margin", 0.1)
    assert code == 0, err and thresholds.exists()
    assert 8.5 < json.loads(thresholds.read_text())["drift"] < R
    code, out, err = repro("warn", "--store", tmp_path / "held_out.nc", "--thresholds", thresholds, "--json")
    assert code == 0, err
    rows = json.loads(out)["runs"]
    collapsed = [row for row in rows if row["t_star"] >= 0]
    assert all(row["alarm"] and row["alarm"]["step"] < row["t_star"] for row in collapsed)
    assert all(row["alarm"]["suggested_eta"] < row["eta"] for row in collapsed)
    code, out, _ = repro("warn", "--store", tmp_path / "held_out.nc", "--thresholds", thresholds)
    assert "ALARM at step" in out and "suggested η" in out


@pytest.mark.parametrize("content, message", [("{bad json", "Expecting property name"),
                                              ('{"drift": "far"}', "drift = 'far'"), (None, "no thresholds file")])
def test_cli_bad_thresholds_give_one_line_errors(repro, tmp_path, content, message):
    store_of(world(range(1)), tmp_path / "s.nc")
    thresholds = tmp_path / "t.json"
    if content is not None:
        thresholds.write_text(content)
    code, out, err = repro("warn", "--store", tmp_path / "s.nc", "--thresholds", thresholds)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def test_cli_bad_store_gives_one_line_error(repro, tmp_path):
    bad = tmp_path / "s.nc"
    bad.write_bytes(b"\x00truncated")
    code, _, err = repro("warn", "--store", bad, "--thresholds", tmp_path / "t.json", "--calibrate")
    assert code == 2 and "cannot read results store" in err and len(err.strip().splitlines()) == 1


def test_the_benchmark_script_runs_on_any_store(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_warning", Path(__file__).parents[1] / "benchmarks"
                                                  / "bench_warning.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    store_of(world(range(4)), tmp_path / "w.nc")
    report = bench.benchmark([tmp_path / "w.nc"])
    rows = report[str(tmp_path / "w.nc")]
    assert [row["split"] for row in rows] == ["even→odd", "odd→even"]
    # the default margin (25 %) puts the drift threshold at R here: only the stale drift (τ > 1) warns in time
    assert all(row["collapses"] == 12 and row["stable"] == 18 and row["warned"] == 6 and row["false_alarms"] == 0
               for row in rows)
    assert "goal:" in bench.table(report)
