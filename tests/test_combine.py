"""`repro combine`: per-run stores → one sweep store, without the padding that reads as divergence."""

import json

import numpy as np
import pytest
import xarray as xr

from integrations.combine import combine_stores
from results import open_store, to_dataset, write_atomic
from analysis.events import collapse_step


def run_store(path, tau, eta, seed, reward, extra=None):
    reward = np.asarray(reward, dtype=float)
    variables = {"reward": (("tau", "eta", "seed", "step"), reward[None, None, None]),
                 "nan_step": (("tau", "eta", "seed"), np.array([[[-1]]]))}
    for name, values in (extra or {}).items():
        variables[name] = (("tau", "eta", "seed", "step"), np.asarray(values, dtype=float)[None, None, None])
    ds = to_dataset(variables, {"tau": [tau], "eta": [eta], "seed": [seed], "step": np.arange(reward.size)},
                    {"source": "test", "eta": eta}, seed)
    write_atomic(ds, path)
    return path


def test_the_plain_xarray_one_liner_fails_on_provenance_attrs(tmp_path):
    a = run_store(tmp_path / "a.nc", 2, 1e-2, 0, [0.5] * 10)
    b = run_store(tmp_path / "b.nc", 2, 3e-2, 0, [0.5] * 10)
    with pytest.raises(xr.MergeError):  # each store carries its own config / created_at attrs
        xr.combine_by_coords([open_store(a), open_store(b)])
    combined = combine_stores([a, b])
    assert dict(combined.sizes) == {"tau": 1, "eta": 2, "seed": 1, "step": 10}
    runs = json.loads(combined.attrs["config"])["runs"]
    assert [run["config"]["eta"] for run in runs] == [1e-2, 3e-2]  # every run's own config is kept


def test_cli_combines_and_keeps_variables_a_run_lacks_as_not_measured(repro, tmp_path):
    a = run_store(tmp_path / "a.nc", 1, 1e-2, 0, [0.5] * 6, {"drift": np.arange(6)})
    b = run_store(tmp_path / "b.nc", 4, 1e-2, 0, [0.5, 0.4] + [0.0] * 4)
    code, out, err = repro("combine", a, b, "--out", tmp_path / "sweep.nc")
    assert code == 0, err and "tau" in out
    ds = open_store(tmp_path / "sweep.nc")
    assert ds.tau.values.tolist() == [1, 4] and np.isnan(ds.drift.sel(tau=4).values).all()
    assert ds.nan_step.dtype.kind == "i" and (ds.nan_step.values == -1).all()
    assert collapse_step(ds.reward.sel(tau=4).values.ravel(), window=4).item() == 2


def test_different_step_grids_are_refused_unless_trimmed(repro, tmp_path):
    short = run_store(tmp_path / "short.nc", 2, 1e-2, 0, [0.5] * 8)
    long = run_store(tmp_path / "long.nc", 2, 3e-2, 0, [0.5] * 12)
    code, _, err = repro("combine", short, long, "--out", tmp_path / "x.nc")
    assert code == 2 and "different step grids" in err and len(err.strip().splitlines()) == 1
    ds = combine_stores([short, long], trim=True)
    assert ds.sizes["step"] == 8 and np.isfinite(ds.reward.values).all()  # no NaN tail read as divergence


def test_two_runs_of_one_cell_and_holes_in_the_grid(repro, tmp_path):
    a = run_store(tmp_path / "a.nc", 2, 1e-2, 0, [0.5] * 5)
    again = run_store(tmp_path / "again.nc", 2, 1e-2, 0, [0.4] * 5)
    code, _, err = repro("combine", a, again, "--out", tmp_path / "x.nc")
    assert code == 2 and "both hold τ = 2, η = 0.01, seed = 0" in err
    ds = combine_stores([a, again], renumber_seeds=True)
    assert ds.seed.values.tolist() == [0, 1] and ds.run_seed.values.ravel().tolist() == [0, 0]
    other = run_store(tmp_path / "other.nc", 4, 3e-2, 7, [0.5] * 5)  # (τ 2, η 3e-2) and (τ 4, η 1e-2) missing
    code, _, err = repro("combine", a, other, "--out", tmp_path / "x.nc")
    assert code == 2 and "have no run" in err and "would read as diverged" in err


@pytest.mark.parametrize("content, message", [(b"", "cannot read results store"), (b"not netcdf", "cannot read"),
                                              (None, "lacks variable(s) reward")])
def test_bad_stores_give_one_line_errors(repro, tmp_path, content, message):
    good = run_store(tmp_path / "good.nc", 2, 1e-2, 0, [0.5] * 5)
    bad = tmp_path / "bad.nc"
    if content is None:
        write_atomic(to_dataset({"drift": (("tau", "eta", "seed", "step"), np.zeros((1, 1, 1, 5)))},
                                {"tau": [2], "eta": [3e-2], "seed": [0], "step": np.arange(5)}, {}, 0), bad)
    else:
        bad.write_bytes(content)
    code, out, err = repro("combine", good, bad, "--out", tmp_path / "x.nc")
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1
    code, _, err = repro("combine", good, "--out", tmp_path / "x.nc")
    assert code == 2 and "at least two stores" in err
