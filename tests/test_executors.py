"""Executors: a process pool and Ray write the same store as the in-process loop, under load too."""

import dataclasses
import operator
import sys

import pytest
import torch
import xarray as xr

from llm import sweep as llm_sweep
from theory.metrics import PROJECTIONS
from results import run_jobs
from synthetic.sweep import SweepConfig, run_sweep

# tests/test_sweep.py's TINY: in-process sweeps share its compiled grid function
TINY = SweepConfig(task="contextual", taus=(1, 3), etas=(0.5, 4.0), seeds=2, steps=20, exact_every=10, batch=8)
LOAD = dataclasses.replace(TINY, taus=tuple(range(1, 51)))
"""200 runs in 50 jobs (one per τ), many more than workers."""


@pytest.mark.slow  # a Ray instance takes ~50 s to start on 2 cores
def test_ray_store_equals_local_and_ray_is_shut_down(tmp_path):
    local = run_sweep(TINY, tmp_path / "local.nc", progress=False)
    on_ray = run_sweep(TINY, tmp_path / "ray.nc", progress=False, executor="ray", workers=1)
    xr.testing.assert_identical(local.drop_attrs(), on_ray.drop_attrs())
    assert not sys.modules["ray"].is_initialized(), "the executor left its Ray instance running"
    (tmp_path / "ray.nc").unlink()  # a local resume reads Ray's parts as its own
    next((tmp_path / "ray.nc.parts").glob("tau=3-*.nc")).unlink()
    xr.testing.assert_identical(local.drop_attrs(), run_sweep(TINY, tmp_path / "ray.nc", progress=False).drop_attrs())


@pytest.mark.slow  # 50 jobs, ~45 s; the llm pool test below keeps the process executor in the default tier
def test_200_runs_on_a_process_pool_give_the_local_store(tmp_path):
    pooled = run_sweep(LOAD, tmp_path / "pool.nc", progress=False, executor="process", workers=2)
    assert len(list((tmp_path / "pool.nc.parts").glob("tau=*.nc"))) == 50
    assert dict(pooled.sizes) == {"tau": 50, "eta": 2, "seed": 2, "step": 20, "proj": PROJECTIONS}
    assert pooled.reward.notnull().all() and pooled.tau.values.tolist() == list(range(1, 51))
    local = run_sweep(LOAD, tmp_path / "local.nc", progress=False)
    xr.testing.assert_identical(local.drop_attrs(), pooled.drop_attrs())


def test_llm_runs_on_a_process_pool_give_the_local_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the warm-start cache lands here
    config = dataclasses.replace(llm_sweep.preset(quick=True), taus=(1, 2), etas=(1e-2,), steps=3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = llm_sweep.run_sweep(config, tmp_path / "local.nc", progress=False)
        pooled = llm_sweep.run_sweep(config, tmp_path / "pool.nc", progress=False, executor="process", workers=1)
    finally:
        torch.set_num_threads(threads)
    xr.testing.assert_identical(local.drop_attrs(), pooled.drop_attrs())


@pytest.mark.parametrize("executor", ["process", "ray"])
def test_a_failing_job_raises_its_own_error(executor):
    with pytest.raises(ZeroDivisionError):
        run_jobs([(operator.truediv, (1, 0)), (operator.add, (1, 2))], executor, workers=1, progress=False)


@pytest.mark.parametrize("args, named", [
    (["--executor", "dask"], "dask"),
    (["--workers", "0"], "--workers"),
    (["--address", "127.0.0.1:6379"], "--executor ray"),
    (["--executor", "process", "--address", "127.0.0.1:6379"], "--executor ray"),
    (["--executor", "ray", "--address", "127.0.0.1:6379", "--workers", "2"], "workers = 2"),
])
@pytest.mark.parametrize("engine", ["synthetic", "llm"])
def test_bad_executor_options_are_one_line(repro, tmp_path, engine, args, named):
    code, _, err = repro("sweep", engine, "--out", tmp_path / "x.nc", *args)
    assert code == 2
    assert err.startswith("Error:") and len(err.strip().splitlines()) == 1 and named in err, err


def test_ray_executor_without_ray_is_one_line(repro, tmp_path, monkeypatch):
    find_spec = sys.modules["importlib.util"].find_spec
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    code, _, err = repro("sweep", "synthetic", "--out", tmp_path / "x.nc", "--executor", "ray")
    assert code == 2 and "needs ray" in err and len(err.strip().splitlines()) == 1, err
