"""`repro advise` equals the two-constraint rule (36)–(38) by hand; `repro fit` feeds it."""

import json

import pytest

from planted import C_LOC, planted_store


def advise(repro, tmp_path, constants, tau, horizon):
    path = tmp_path / "constants.json"
    path.write_text(json.dumps(constants))
    code, out, err = repro("advise", "--tau", tau, "--horizon", horizon, "--constants", path, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize("tau, horizon, eta_max, binding", [
    (4, 2000, 4.0 / 2000, "horizon"),   # c_loc/τ = 0.005 > c_hor/T = 0.002
    (16, 100, 0.02 / 16, "local"),      # c_loc/τ = 0.00125 < c_hor/T = 0.04
])
def test_advice_is_the_rule_by_hand(repro, tmp_path, tau, horizon, eta_max, binding):
    advice = advise(repro, tmp_path, {"c_loc": 0.02, "c_hor": 4.0}, tau, horizon)
    assert advice["eta_max"] == pytest.approx(eta_max)
    assert advice["binding"] == binding
    assert (advice["c_loc"], advice["c_hor"]) == (0.02, 4.0)
    slack = max(0.02 / tau, 4.0 / horizon)
    assert advice["margin"] == pytest.approx(slack / eta_max)


def test_radius_constants_go_through_the_rule(repro, tmp_path):
    # c_loc = r_clip/U = 0.5, c_hor = R/U = 50; τ = 2, T = 200 → min(0.25, 0.25): a tie counts as local
    advice = advise(repro, tmp_path, {"r_clip": 1.0, "R": 100.0, "U": 2.0}, 2, 200)
    assert advice["eta_max"] == pytest.approx(0.25)
    assert advice["binding"] == "local" and advice["margin"] == pytest.approx(1.0)


def test_fit_output_feeds_advise(repro, tmp_path):
    store = planted_store(tmp_path / "planted.nc", seeds=4, steps=300)
    fitted = tmp_path / "fit.json"
    code, out, err = repro("fit", "--store", store, "--json", "--out", fitted, "--boot", 20)
    assert code == 0, err
    result = json.loads(out)
    assert result == json.loads(fitted.read_text())
    assert result["c_loc"] == pytest.approx(C_LOC)
    assert result["c_hor_low"] <= result["c_hor"] <= result["c_hor_high"]
    code, out, err = repro("advise", "--tau", 8, "--horizon", 10, "--constants", fitted, "--json")
    assert code == 0, err
    assert json.loads(out)["eta_max"] == pytest.approx(C_LOC / 8)


@pytest.mark.parametrize("content, needle", [
    ("not json", "cannot read"),
    ('{"c_loc": 0.1}', "neither"),
    ('{"c_loc": -1, "c_hor": 2}', "c_loc"),
    ('{"c_loc": "x", "c_hor": 2}', "c_loc"),
    ("[1, 2]", "not a JSON object"),
])
def test_bad_constants_give_one_line(repro, tmp_path, content, needle):
    path = tmp_path / "c.json"
    path.write_text(content)
    code, out, err = repro("advise", "--tau", 1, "--horizon", 10, "--constants", path)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_bad_tau_is_named(repro, tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"c_loc": 1, "c_hor": 1}')
    code, _, err = repro("advise", "--tau", 0, "--horizon", 10, "--constants", path)
    assert code == 2 and "--tau" in err


def test_constants_with_uncertainties_use_their_value(repro, tmp_path):
    # `repro constants --task arithmetic --json` reports each constant as {value, uncertainty, samples}
    entry = {"uncertainty": 0.1, "samples": 8}
    advice = advise(repro, tmp_path, {"r_clip": {"value": 0.3, **entry}, "R": {"value": 6.0, **entry},
                                      "U": {"value": 2.0, **entry}}, 3, 10)
    assert (advice["c_loc"], advice["c_hor"]) == (0.15, 3.0)
    assert advice["binding"] == "local"


def test_analyze_prints_every_prediction_with_an_interval(repro, tmp_path):
    store = planted_store(tmp_path / "planted.nc", seeds=4, steps=300)
    code, out, err = repro("analyze", "--store", store, "--boot", 20, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {"a", "b", "c", "eta_tstar_slope", "msd_stable", "msd_collapsing", "bias_ratio"} <= summary["estimates"].keys()
    assert set(summary["verdicts"].values()) <= {"holds", "fails", "inconclusive"}
    code, out, _ = repro("analyze", "--store", store, "--boot", 20)
    assert code == 0 and "censor window" in out


def _bad_stores(tmp_path):
    import xarray as xr

    from planted import planted_dataset
    from results.store import write_atomic

    ds = planted_dataset(seeds=2, steps=40)
    paths = {"not netCDF": tmp_path / "text.nc", "empty": tmp_path / "empty.nc", "missing": tmp_path / "absent.nc"}
    paths["not netCDF"].write_text("hello")
    paths["empty"].write_bytes(b"")
    for name, bad in {"no reward": ds.drop_vars("reward"), "wrong dims": ds.rename({"seed": "replica"}),
                      "no variables": xr.Dataset(attrs=ds.attrs)}.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.nc"
        write_atomic(bad, paths[name])
    return paths


@pytest.mark.parametrize("command", ["analyze", "fit"])
def test_bad_stores_give_one_line_errors(repro, tmp_path, command):
    for name, path in _bad_stores(tmp_path).items():
        code, out, err = repro(command, "--store", path)
        assert code == 2 and err.startswith("Error") and len(err.strip().splitlines()) == 1, (name, err)
