"""Faults: a killed sweep resumes exactly, damaged files are reported and recomputed, divergence is a
collapse, and a checkpoint's code never runs."""

import dataclasses
import logging
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr

from llm.config import GRPOConfig, ModelConfig, RunConfig
from llm.model import load, tiny_model, tiny_tokenizer
from llm.pipeline import train
from llm.sweep import SweepConfig as LlmSweepConfig
from llm.sweep import run_dataset
from synthetic.sweep import SweepConfig, run_sweep
from analysis.events import collapse_step

REPO = Path(__file__).resolve().parents[1]
# TINY's run config (tests/test_sweep.py), so in-process sweeps share its compiled grid function
KILLED = SweepConfig.preset("contextual", taus=tuple(range(1, 41)), etas=(0.5, 4.0), seeds=2, steps=20,
                            exact_every=10, batch=8)
KILLED_ARGS = ["--task", "contextual", "--tau", ",".join(map(str, KILLED.taus)), "--eta", "0.5,4", "--seeds", "2",
               "--steps", "20", "--exact-every", "10", "--batch", "8", "--no-progress"]
SMALL = dataclasses.replace(KILLED, taus=(1, 3))


def repro_process(*args):
    """``repro ARGS`` as a child process of this interpreter, in the repository root."""
    return subprocess.Popen([sys.executable, "-m", "paper_repro", *map(str, args)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "JAX_PLATFORMS": "cpu"})


def snapshot(parts):
    """Identity of every finished part: a rewrite changes inode or mtime."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.stat().st_size) for p in parts.glob("tau=*.nc")}


def test_sigkilled_sweep_resumes_without_losing_or_recomputing_a_run(tmp_path, counted):
    out, parts = tmp_path / "killed.nc", tmp_path / "killed.nc.parts"
    child = repro_process("sweep", "synthetic", "--out", out, *KILLED_ARGS)
    try:
        deadline = time.monotonic() + 120
        while not any(parts.glob("tau=*.nc")):
            assert child.poll() is None and time.monotonic() < deadline, "the sweep ended or hung before a part"
            time.sleep(0.005)
        time.sleep(np.random.default_rng(6).uniform(0.05, 0.4))  # a seeded moment inside the sweep
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.communicate()
    before = snapshot(parts)
    assert 0 < len(before) < len(KILLED.taus) and not out.exists(), f"not killed mid-sweep: {len(before)} parts"
    done = {int(name.split("-")[0].removeprefix("tau=")) for name in before}

    resumed = run_sweep(KILLED, out, progress=False)
    assert sorted(counted) == sorted(set(KILLED.taus) - done), "a finished τ was recomputed or one was skipped"
    after = snapshot(parts)
    assert {name: after[name] for name in before} == before, "a part finished before the kill was rewritten"
    whole = run_sweep(KILLED, tmp_path / "whole.nc", progress=False)
    xr.testing.assert_identical(whole.drop_attrs(), resumed.drop_attrs())


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garble(path):
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def misplace(path):
    other = next(p for p in path.parent.glob("tau=*.nc") if p != path)
    path.write_bytes(other.read_bytes())  # an intact part of another τ under this τ's name


@pytest.mark.parametrize("damage", [truncate, garble, misplace])
def test_a_damaged_part_is_reported_and_recomputed(tmp_path, counted, caplog, damage):
    out = tmp_path / "s.nc"
    whole = run_sweep(SMALL, out, progress=False)
    out.unlink()
    part = next((tmp_path / "s.nc.parts").glob("tau=3-*.nc"))
    damage(part)
    counted.clear()
    with caplog.at_level(logging.WARNING, logger="results.store"):
        again = run_sweep(SMALL, out, progress=False)
    assert counted == [3]
    [record] = [r for r in caplog.records if r.name == "results.store"]
    assert str(part) in record.getMessage() and "\n" not in record.getMessage()
    xr.testing.assert_identical(whole.drop_attrs(), again.drop_attrs())


def test_a_damaged_store_is_reported_and_rebuilt_from_its_parts(tmp_path, counted, caplog):
    out = tmp_path / "s.nc"
    whole = run_sweep(SMALL, out, progress=False)
    truncate(out)
    counted.clear()
    with caplog.at_level(logging.WARNING, logger="results.store"):
        again = run_sweep(SMALL, out, progress=False)
    assert counted == []
    [record] = [r for r in caplog.records if r.name == "results.store"]
    assert str(out) in record.getMessage()
    xr.testing.assert_identical(whole.drop_attrs(), again.drop_attrs())


def test_the_cli_reports_a_damaged_store_in_one_stderr_line(tmp_path):
    out = tmp_path / "s.nc"
    args = ["--task", "contextual", "--tau", "1,3", "--eta", "0.5,4", "--seeds", "2", "--steps", "20",
            "--exact-every", "10", "--batch", "8", "--no-progress"]
    run_sweep(SMALL, out, progress=False)
    garble(out)
    stdout, stderr = repro_process("sweep", "synthetic", "--out", out, *args).communicate(timeout=120)
    assert stderr.count("\n") == 1 and "damaged results store" in stderr and str(out) in stderr, stderr
    assert stdout.startswith(f"wrote {out}")
    assert xr.open_dataset(out).sizes["tau"] == 2


@pytest.mark.parametrize("nan_at", [3, 19])
def test_a_nan_reward_is_a_collapse_at_its_step(nan_at):
    reward = np.r_[np.full(nan_at, 0.5), np.full(20 - nan_at, np.nan)]
    assert collapse_step(reward) == nan_at  # never censored, even a single NaN step at the end


@pytest.fixture
def one_thread():
    """torch on one thread, as ``repro sweep llm`` runs tiny models (many threads are slower on them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_a_diverged_llm_run_is_stored_as_collapsed_at_its_step(tmp_path, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)  # the warm-start cache lands here
    steps = 12
    run = RunConfig(tau=1, eta=1e12, seed=0, steps=steps, grpo=GRPOConfig(optimizer="sgd", val_every=6))
    series, theta_proj, constants, nan_step = train(run)  # SGD at η = 1e12: infinite weights after one update
    assert nan_step == 1
    ds = run_dataset(run, series, theta_proj, constants, nan_step,
                     LlmSweepConfig(taus=(1,), etas=(1e12,), steps=steps))
    assert ds.nan_step.values.ravel().tolist() == [1]
    assert np.isnan(ds.drift.values[..., 1:]).all() and np.isfinite(ds.drift.values[..., 0]).all()
    assert collapse_step(ds.reward.values).item() == 1


class _Trap:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


@pytest.fixture
def pickle_model(tmp_path):
    """A tiny Llama directory whose weights are only ``pytorch_model.bin``, plus a safetensors twin."""
    tokenizer = tiny_tokenizer()
    model = tiny_model("small", tokenizer, seed=0)
    safe, unsafe = tmp_path / "safe", tmp_path / "unsafe"
    for directory in (safe, unsafe):
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
    (unsafe / "model.safetensors").unlink()
    torch.save(model.state_dict(), unsafe / "pytorch_model.bin")
    return model, safe, unsafe


def test_a_pickle_only_model_is_refused_unless_allowed(pickle_model):
    model, safe, unsafe = pickle_model
    with pytest.raises(ValueError, match="pytorch_model.bin") as refused:
        load(ModelConfig(str(unsafe)))
    assert "\n" not in str(refused.value)
    for directory, allow in ((unsafe, True), (safe, False)):
        _, loaded = load(ModelConfig(str(directory), allow_pickle=allow))
        for name, value in model.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0, msg=name)


def test_a_refused_checkpoint_runs_no_code(pickle_model, tmp_path):
    _, _, unsafe = pickle_model
    marker = tmp_path / "code-ran"
    (unsafe / "pytorch_model.bin").write_bytes(pickle.dumps(_Trap(marker)))
    with pytest.raises(ValueError, match="pickle"):
        load(ModelConfig(str(unsafe)))
    assert not marker.exists()


def test_the_cli_refuses_a_pickle_model_unless_allow_pickle(repro, capsys, pickle_model, tmp_path):
    _, _, unsafe = pickle_model
    capsys.readouterr()  # drop save_pretrained's progress output
    args = ["sweep", "llm", "--model", unsafe, "--tau", "1", "--eta", "1e-3", "--seeds", "1", "--steps", "1",
            "--no-progress"]
    code, _, err = repro(*args, "--out", tmp_path / "refused.nc")
    assert code == 2 and err.startswith("Error:") and "pytorch_model.bin" in err and err.count("\n") == 1, err
    code, _, err = repro(*args, "--allow-pickle", "--out", tmp_path / "allowed.nc")
    assert code == 0, err
