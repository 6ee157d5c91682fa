"""`repro sweep llm`: a resumable store with every §6 metric, every GRPO knob recorded, one-line errors."""

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr

from llm.probes import CONSTANTS
from llm.sweep import configure
from llm.tasks import make_task
from results import open_store
from theory.metrics import PROJECTIONS, SWEEP_DIMS

SMALL = ["--tau", "1,2", "--eta", "1e-4,1e-2", "--seeds", "1", "--steps", "4", "--no-progress"]
KNOBS = ["--prompts", "4", "--group", "3", "--max-new-tokens", "3", "--temperature", "0.9", "--eps", "0.3",
         "--kappa", "0.01", "--optimizer", "sgd", "--reuse", "slices", "--bias-every", "4"]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the warm-start cache (.cache/) lands in the test's directory


def test_sweep_writes_every_metric_and_resumes(repro, tmp_path):
    out = tmp_path / "llm.nc"
    code, stdout, err = repro("sweep", "llm", "--out", out, *SMALL, *KNOBS)
    assert code == 0, err
    ds = open_store(out, dims=SWEEP_DIMS, required=["reward", "val_reward", "grad_cos", "drift", "stale_drift",
                                                     "clip_frac", "ess", "kl_ref", "bias_sq", "bias_sq_lo",
                                                     "bias_sq_hi", "bias_norm", "update_norm", "staleness",
                                                     "theta_proj", "probe_G", "bias_bound"])
    assert dict(ds.sizes) == {"tau": 2, "eta": 2, "seed": 1, "step": 4, "proj": PROJECTIONS}
    assert ds.theta_proj.dims == SWEEP_DIMS + ("proj",) and bool(ds.theta_proj.notnull().all())
    for name in CONSTANTS:
        assert ds[f"const_{name}"].dims == SWEEP_DIMS[:3] and f"const_{name}_se" in ds, name
    # a probe every 4 steps, at the last step of its cycle: τ = 1 at step 0, τ = 2 at step 1 (lag 1)
    probed = ds.bias_sq.sel(eta=1e-4, seed=0).notnull().values
    np.testing.assert_array_equal(probed, [[True, False, False, False], [False, True, False, False]])
    assert ds.staleness.sel(tau=2, eta=1e-4, seed=0).values[1] == 1
    grpo = json.loads(ds.attrs["config"])["grpo"]
    assert {k: grpo[k] for k in ("prompts", "group", "max_new_tokens", "temperature", "eps", "kappa", "optimizer",
                                 "reuse", "bias_every")} == {
        "prompts": 4, "group": 3, "max_new_tokens": 3, "temperature": 0.9, "eps": 0.3, "kappa": 0.01,
        "optimizer": "sgd", "reuse": "slices", "bias_every": 4}
    parts = sorted((tmp_path / "llm.nc.parts").glob("*.nc"))
    assert len(parts) == 4
    parts[0].unlink()
    out.unlink()
    code, _, err = repro("sweep", "llm", "--out", out, *SMALL, *KNOBS)
    assert code == 0, err
    xr.testing.assert_equal(open_store(out).drop_attrs(), ds.drop_attrs())


@pytest.mark.parametrize("args, named", [
    (["--tau", "0"], "--tau"),
    (["--tau", "1,x"], "--tau"),
    (["--eta", "0"], "--eta"),
    (["--eta", "nan"], "--eta"),
    (["--model", "no-such-model"], "no-such-model"),
    (["--seeds", "0"], "seeds"),
    (["--steps", "0"], "steps"),
    (["--prompts", "0"], "prompts"),
    (["--group", "1"], "group"),
    (["--max-new-tokens", "0"], "max_new_tokens"),
    (["--temperature", "0"], "temperature"),
    (["--eps", "inf"], "eps"),
    (["--kappa", "-0.1"], "kappa"),
    (["--bias-every", "-1"], "bias_every"),
    (["--tau", "2", "--bias-every", "2", "--bias-lags", "2"], "lag 2 cannot be reached"),
    (["--tau", "3", "--pipeline", "async", "--bias-every", "2", "--bias-lags", "all"], "cannot be reached"),
    (["--pipeline", "async", "--reuse", "slices"], "async"),
    (["--pipeline", "sync"], "sync"),
    (["--optimizer", "lion"], "lion"),
    (["--task", "gsm8k"], "--data"),
    (["--task", "reverse", "--digits", "1"], "reverse digits 1"),
    (["--warm-target", "1.5"], "target 1.5"),
    (["--shot-format", "prose"], "prose"),
])
def test_bad_input_is_one_line(repro, tmp_path, args, named):
    code, out, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", *args)
    assert code == 2
    assert err.startswith("Error:") and len(err.strip().splitlines()) == 1 and named in err


@pytest.mark.parametrize("files, named", [([], "config.json"), (["config.json"], "no weights"),
                                          (["config.json", "pytorch_model.bin"], "pickle")])
def test_model_directory_without_usable_weights_is_one_line(repro, tmp_path, files, named):
    model = tmp_path / "model"
    model.mkdir()
    for name in files:
        (model / name).write_text("{}")
    code, _, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", "--model", model)
    assert code == 2 and err.startswith("Error:") and len(err.strip().splitlines()) == 1 and named in err


def test_slices_need_prompts_divisible_by_tau(repro, tmp_path):
    code, _, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", "--reuse", "slices", "--tau", "3", *SMALL[2:])
    assert code == 2 and "divisible" in err and len(err.strip().splitlines()) == 1


def test_jsonl_row_without_answer_names_its_line(repro, tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"question": "1+1?", "answer": "2 #### 2"}\n{"question": "2+2?", "answer": "four"}\n')
    code, _, err = repro("sweep", "llm", "--out", tmp_path / "x.nc", "--task", "gsm8k", "--data", data, *SMALL)
    assert code == 2 and f"{data}:2" in err and len(err.strip().splitlines()) == 1


def test_lift_starts_from_the_learning_substrate_and_records_it(repro, tmp_path):
    """``--lift`` takes the reverse task, the target warm start and its GRPO shape; given options still win."""
    out = tmp_path / "lift.nc"
    code, _, err = repro("sweep", "llm", "--out", out, "--lift", "--steps", "2", "--prompts", "4",
                         "--warm-target", "0.2", "--no-progress")
    assert code == 0, err
    ds = open_store(out)
    config = json.loads(ds.attrs["config"])
    assert config["task"]["kind"] == "reverse" and config["task"]["digits"] == 3
    assert config["warmstart"]["target"] == 0.2 and config["grpo"]["prompts"] == 4
    assert list(ds.tau.values) == [1] and list(ds.eta.values) == [1e-3] and ds.sizes["step"] == 2


def test_the_prompt_format_is_a_recorded_knob():
    """``--shots``/``--shot-format`` reach the run's task, which the store records whole."""
    config = configure(task={"kind": "arithmetic", "shots": 2, "shot_format": "question"})
    assert (config.task.kind, config.task.shots, config.task.shot_format) == ("arithmetic", 2, "question")
    assert make_task(config.task).train(np.random.default_rng(0), 1)[0].prompt.startswith("Q: What is")
    assert configure(task={"kind": "arithmetic", "shots": 2}).task.shot_format == "equation"
    # another task than the preset's takes that task's defaults (one-digit operands), not the preset's 3 digits
    assert configure(task={"kind": "arithmetic"}).task.digits == 1
    assert configure(task={"kind": "arithmetic", "digits": 2}).task.digits == 2
    assert configure(task={"digits": 4}).task == dataclasses.replace(configure().task, digits=4)
