"""repro advise / fit / analyze: the rule (36)–(38) by hand, constants files, and bad stores."""

import json

import numpy as np
import pytest

from tests.planted import C_HOR, C_LOC, planted_store


def _advise(repro, path, tau, horizon):
    code, out, err = repro("advise", "--tau", tau, "--horizon", horizon, "--constants", path, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.mark.parametrize(("tau", "horizon", "binding"), [(4, 2000, "horizon"), (50, 100, "local")])
def test_advice_equals_the_rule_by_hand(repro, tmp_path, tau, horizon, binding):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"c_loc": 0.2, "c_hor": 40.0}))
    advice = _advise(repro, path, tau, horizon)
    local, far = 0.2 / tau, 40.0 / horizon
    assert advice["eta_max"] == pytest.approx(min(local, far))
    assert advice["binding"] == binding
    assert advice["margin"] == pytest.approx(max(local, far) / min(local, far))
    assert (advice["c_loc"], advice["c_hor"]) == (0.2, 40.0)


def test_advice_from_radii_uses_r_clip_over_U_and_R_over_U(repro, tmp_path):
    path = tmp_path / "radii.json"
    path.write_text(json.dumps({"r_clip": 0.3, "R": 6.0, "U": 2.0, "G": 1.0}))
    advice = _advise(repro, path, 3, 10)
    assert (advice["c_loc"], advice["c_hor"]) == (0.15, 3.0)
    assert advice["eta_max"] == pytest.approx(0.05) and advice["binding"] == "local"


@pytest.mark.parametrize(("text", "needle"), [
    ("{", "cannot read"), ("[1, 2]", "not a JSON object"), ('{"c_loc": 1}', "neither"),
    ('{"c_loc": -1, "c_hor": 2}', "c_loc = -1"), ('{"c_loc": 1, "c_hor": "x"}', "c_hor = 'x'"),
])
def test_bad_constants_files_give_one_line_errors(repro, tmp_path, text, needle):
    path = tmp_path / "bad.json"
    path.write_text(text)
    code, out, err = repro("advise", "--tau", 4, "--horizon", 100, "--constants", path)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_bad_tau_is_rejected(repro, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"c_loc": 0.2, "c_hor": 40.0}))
    code, _, err = repro("advise", "--tau", 0, "--horizon", 100, "--constants", path)
    assert code == 2 and "--tau" in err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return planted_store(tmp_path_factory.mktemp("planted") / "planted.nc", seeds=6, steps=500)


def test_fit_recovers_planted_constants_and_feeds_advise(repro, store, tmp_path):
    out_file = tmp_path / "fit.json"
    code, out, err = repro("fit", "--store", store, "--boot", 50, "--json", "--out", out_file)
    assert code == 0, err
    fit = json.loads(out)
    assert fit["c_loc_low"] <= C_LOC <= fit["c_loc_high"]
    # c_hor's interval resamples seeds only, so it is narrow; the planted noise is 10 % per run.
    assert fit["c_hor"] == pytest.approx(C_HOR, rel=0.05) and fit["c_hor_low"] <= fit["c_hor"] <= fit["c_hor_high"]
    advice = _advise(repro, out_file, 4, 2000)
    assert advice["eta_max"] == pytest.approx(min(fit["c_loc"] / 4, fit["c_hor"] / 2000))


def test_analyze_prints_every_prediction_with_an_interval(repro, store):
    code, out, err = repro("analyze", "--store", store, "--boot", 50, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert {"a", "b", "c", "spread", "msd_stable", "msd_collapsing", "bias_ratio"} <= summary["estimates"].keys()
    assert summary["verdicts"]["a"] == "holds" and summary["verdicts"]["c"] == "holds"
    assert np.shape(summary["collapse_probability"]) == (len(summary["tau"]), len(summary["eta"]))
    code, out, _ = repro("analyze", "--store", store, "--boot", 20)
    assert code == 0 and "censor window" in out


def _bad_stores(tmp_path):
    import xarray as xr

    from results.store import write_atomic
    from tests.planted import planted_dataset

    ds = planted_dataset(seeds=2, steps=40)
    stores = {"not netCDF": "hello", "empty": b""}
    paths = {}
    for name, content in stores.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.nc"
        getattr(paths[name], "write_text" if isinstance(content, str) else "write_bytes")(content)
    for name, bad in {"no reward": ds.drop_vars("reward"),
                      "wrong dims": ds.rename({"seed": "replica"}),
                      "no variables": xr.Dataset(attrs=ds.attrs)}.items():
        paths[name] = tmp_path / f"{name.replace(' ', '_')}.nc"
        write_atomic(bad, paths[name])
    paths["missing file"] = tmp_path / "absent.nc"
    return paths


@pytest.mark.parametrize("command", ["analyze", "fit"])
def test_bad_stores_give_one_line_errors(repro, tmp_path, command):
    for name, path in _bad_stores(tmp_path).items():
        code, out, err = repro(command, "--store", path)
        assert code == 2, name
        assert err.startswith("Error") and len(err.strip().splitlines()) == 1, (name, err)
        assert "Traceback" not in err
