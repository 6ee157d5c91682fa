"""analyze(ds) on planted worlds (analysis/sweep.py): the JSON of `repro analyze`, the rows it judges, and stores
that hold only some variables."""

import json
import math

import numpy as np
import pytest
from stores import sweep_dataset

from analysis import analyze
from analysis.planted import planted_world
from analysis.sweep import BY_KEY, ROWS
from results.store import write_atomic

GRID = {"taus": (1, 2, 4, 8, 16), "etas": tuple(0.0125 * 2.0 ** k for k in range(8)), "seeds": 16, "steps": 300}


@pytest.fixture(scope="module")
def horizon():
    ds, truth = planted_world("horizon", 2, **GRID)
    return analyze(ds, n_boot=50), truth


def test_summary_keeps_the_json_shape(horizon):
    an, _ = horizon
    summary = json.loads(json.dumps(an.summary(), allow_nan=False))
    for name in ("a", "b", "c", "c_loc", "c_hor"):
        assert set(summary["estimates"][name]) == {"value", "low", "high"}
        assert summary["verdicts"][name] in ("holds", "fails", "inconclusive")
        assert name in summary["seeds_needed"]
    assert set(summary["census"]) >= {"drift", "kick", "absorption"}
    assert set(summary["verdicts"]) == {row.key for row in ROWS}
    assert summary["boundary"]["binding"].keys() == {"1", "2", "4", "8", "16"}
    assert summary["event_source"] == "success" and summary["drift_labels"]["collapsing"]["ballistic"] > 0


def test_horizon_world_binds_the_horizon_at_small_tau(horizon):
    an, truth = horizon
    branch = an.binding()
    assert branch[1.0] == "horizon" and branch[16.0] == "local"
    est = an.estimates
    assert est["c_hor"].low <= truth["c_hor"] <= est["c_hor"].high
    assert est["a"].low <= truth["a"] <= est["a"].high
    assert an.boundary.preferred == "two-branch"
    census = an.events.census()  # planted drift: no kick, no return; collapses in the first steps stay unclassified
    assert census["kick"] == census["absorption"] == 0 and census["drift"] > 0
    assert census["drift"] + census["unclassified"] == an.events.collapsed.sum()


def test_the_rule_from_constants_holds_in_a_world_built_from_it(horizon):
    # planted U = R/c_hor and update_norm = ‖θ_{t+1} − θ_t‖/η: the predicted c_hor = R/U is the boundary's
    an, truth = horizon
    assert an.constants["c_hor_pred"].value == pytest.approx(truth["c_hor"], rel=0.02)
    assert an.verdicts()["c_hor"] == "holds"


def test_theorem2_rows_hold_in_the_paper_world(horizon):
    an, _ = horizon
    verdicts = an.verdicts()
    assert verdicts["b"] == verdicts["c"] == "holds"
    assert verdicts["radius_eta"] == verdicts["radius_tau"] == "holds"  # ‖θ_t* − θ_0‖ = R whatever η, τ
    assert verdicts["H_collapsing"] == "holds" and verdicts["H_stable"] == "holds"
    assert all(isinstance(n, int) for n in an.seeds_needed().values() if n is not None and n != float("inf"))


def test_collapse_probability_rising_with_tau_does_not_read_as_c():
    ds, truth = planted_world("tau_incidence", 4, **GRID)
    est = analyze(ds, n_boot=20).estimates
    assert est["c"].low <= 0.0 <= est["c"].high and est["b"].low <= 1.0 <= est["b"].high


def test_a_false_law_fails():
    ds, truth = planted_world("false_law", 5, **GRID)
    verdicts = analyze(ds, n_boot=20).verdicts()
    assert "fails" in (verdicts["b"], verdicts["c"], verdicts["a"])


def test_a_store_with_only_reward_is_analysed_and_says_what_is_not_measured():
    ds, _ = planted_world("sync", 0, taus=(1, 2, 4), etas=(0.05, 0.1, 0.2, 0.4, 0.8), seeds=6, steps=200)
    an = analyze(ds[["reward"]], n_boot=10)
    s = json.loads(json.dumps(an.summary(), allow_nan=False))
    assert s["event_source"] == "reward" and "drift" in s["not_measured"]
    assert s["census"]["unclassified"] == int(an.events.collapsed.sum()) > 0
    assert s["verdicts"]["H_collapsing"] == s["verdicts"]["theorem1_slope"] == "inconclusive"
    assert s["estimates"]["H_collapsing"] == {"value": None, "low": None, "high": None}
    assert "not measured" in an.table()


@pytest.mark.parametrize("spacing", [1, 2])
def test_alignment_row_reads_the_surrogate_gradient_cosine(spacing):
    # collapsing runs: cos 0.8 before t* (0.1 after), stable runs 0.1 at the same steps; applied updates (Adam)
    # 0.97 in both; logged every `spacing` steps: the window before t* is found by step, not by entry
    taus, etas, seeds, steps = (1, 2), (0.1, 0.2, 0.4), 4, 120
    shape = (len(taus), len(etas), seeds, steps)
    reward = np.full(shape, 0.5)
    reward[:, 2, :, 60:] = 0.0
    collapsing = np.broadcast_to(np.arange(3)[None, :, None, None] == 2, shape)
    raw = np.where(collapsing & (np.arange(steps) < 60), 0.8, 0.1)
    ds = sweep_dataset(taus, etas, {"reward": reward, "raw_grad_cos": raw, "grad_cos": np.full(shape, 0.97)},
                       steps=spacing * np.arange(steps))
    est = analyze(ds, n_boot=20).estimates
    assert est["alignment_raw"].value == pytest.approx(-0.7)
    assert est["alignment_applied"].value == pytest.approx(0.0)
    assert BY_KEY["alignment_raw"].bound


def test_table2_rows_are_cell_medians(horizon):
    an, _ = horizon
    rows = an.table2()
    assert rows and all(r["p_collapse"] > 0 for r in rows)
    row = rows[0]
    assert row["eta_t_star"] == pytest.approx(row["eta"] * row["t_star"])


# ---------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    ds, _ = planted_world("clean", 1, taus=(1, 2, 4, 8), etas=tuple(0.025 * 2 ** k for k in range(6)), seeds=8,
                          steps=200)
    path = tmp_path_factory.mktemp("cli") / "planted.nc"
    write_atomic(ds, path)
    return path


def test_repro_analyze_json_and_table(repro, store):
    code, out, err = repro("analyze", "--store", store, "--boot", 10, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {"a", "b", "c", "c_loc", "c_hor"} <= summary["estimates"].keys()
    # one-sided: the horizon branch binds nowhere, so c_hor ∈ [x, ∞): "inf", not null (null: not estimable)
    c_hor = summary["estimates"]["c_hor"]
    assert c_hor["high"] == "inf" and float(c_hor["high"]) == math.inf and float(c_hor["low"]) > 0
    assert summary["estimates"]["c_loc_pred"] == {"value": None, "low": None, "high": None}
    assert set(summary["census"]) >= {"drift", "kick", "absorption"}
    code, out, _ = repro("analyze", "--store", store, "--boot", 10)
    assert code == 0 and "censor window" in out and "census" in out


def _bad_stores(tmp_path):
    import xarray as xr

    ds, _ = planted_world("clean", 0, taus=(1, 2), etas=(0.1, 0.2), seeds=2, steps=40)
    paths = {"not netCDF": tmp_path / "text.nc", "empty": tmp_path / "empty.nc", "missing": tmp_path / "absent.nc"}
    paths["not netCDF"].write_text("hello")
    paths["empty"].write_bytes(b"")
    for name, bad in {"no reward": ds.drop_vars("reward"), "wrong dims": ds.rename({"seed": "replica"}),
                      "no variables": xr.Dataset(attrs=ds.attrs), "all NaN": ds.assign(reward=ds.reward * np.nan)
                      }.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.nc"
        write_atomic(bad, paths[name])
    return paths


@pytest.mark.parametrize("command", ["analyze", "fit"])
def test_bad_stores_give_one_line_errors(repro, tmp_path, command):
    for name, path in _bad_stores(tmp_path).items():
        code, _, err = repro(command, "--store", path)
        assert code == 2 and err.startswith("Error") and len(err.strip().splitlines()) == 1, (name, err)
    code, _, err = repro(command, "--store", tmp_path / "text.nc", "--boot", 3)
    assert code == 2 and "--boot" in err
