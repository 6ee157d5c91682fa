"""`repro sweep llm`: a resumable store with every §6 metric, and one-line errors on bad input."""

import json

import pytest
import xarray as xr

from results import open_store
from theory.metrics import SWEEP_DIMS

SMALL = ["--tau", "1,2", "--eta", "1e-4,1e-2", "--seeds", "1", "--steps", "4", "--no-progress"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the warm-start cache (.cache/) lands in the test's directory


def test_sweep_writes_every_metric_and_resumes(repro, tmp_path):
    out = tmp_path / "llm.nc"
    code, stdout, err = repro("sweep", "llm", "--out", out, *SMALL)
    assert code == 0, err
    ds = open_store(out, dims=SWEEP_DIMS, required=["reward", "val_reward", "grad_cos", "drift", "stale_drift",
                                                     "clip_frac", "ess", "kl_ref", "bias_norm", "update_norm",
                                                     "staleness"])
    assert ds.bias_norm.isel(step=0).notnull().all()  # the quick preset estimates the bias at step 0, then every 6 steps
    assert dict(ds.sizes) == {"tau": 2, "eta": 2, "seed": 1, "step": 4}
    assert json.loads(ds.attrs["config"])["grpo"]["reuse"] == "whole"
    parts = sorted((tmp_path / "llm.nc.parts").glob("*.nc"))
    assert len(parts) == 4
    parts[0].unlink()
    out.unlink()
    code, _, err = repro("sweep", "llm", "--out", out, *SMALL)
    assert code == 0, err
    xr.testing.assert_equal(open_store(out).drop_attrs(), ds.drop_attrs())


@pytest.mark.parametrize("args, named", [
    (["--tau", "0"], "--tau"),
    (["--tau", "1,x"], "--tau"),
    (["--eta", "0"], "--eta"),
    (["--eta", "-1e-3"], "--eta"),
    (["--eta", "nan"], "--eta"),
    (["--model", "no-such-model"], "no-such-model"),
    (["--seeds", "0"], "--seeds"),
    (["--steps", "0"], "--steps"),
    (["--bias-every", "-1"], "--bias-every"),
    (["--pipeline", "async", "--reuse", "slices"], "async"),
    (["--pipeline", "sync"], "sync"),
    (["--optimizer", "lion"], "lion"),
    (["--task", "gsm8k"], "--data"),
])
def test_bad_input_is_one_line(repro, tmp_path, args, named):
    code, out, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", *args)
    assert code == 2
    assert err.startswith("Error:") and len(err.strip().splitlines()) == 1 and named in err


def test_slices_need_prompts_divisible_by_tau(repro, tmp_path):
    code, _, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", "--reuse", "slices", "--tau", "3", *SMALL[2:])
    assert code == 2 and "divisible" in err and len(err.strip().splitlines()) == 1


def test_jsonl_row_without_answer_names_its_line(repro, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2 #### 2"}\n{"question": "2+2?", "answer": "four"}\n')
    code, _, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", "--task", "gsm8k", "--data", data, *SMALL)
    assert code == 2 and f"{data}:2" in err and len(err.strip().splitlines()) == 1
