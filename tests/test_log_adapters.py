"""`repro import`: TRL and verl metric logs → a results store of one run (THEORY.md §6 names)."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.logs import import_log, sanitize
from results import open_store
from theory.metrics import METRICS

DATA = Path(__file__).parent / "data" / "logs"


def test_trl_trainer_state_maps_onto_our_names():
    ds = import_log(DATA / "trl_trainer_state.json", "trl", tau=4)
    assert ds.reward.dims == ("tau", "eta", "seed", "step") and list(ds.step.values) == [0, 1, 2, 3]  # from 1
    np.testing.assert_array_equal(ds.reward.values[0, 0, 0], [0.50, 0.75, 0.25, 0.00])
    np.testing.assert_array_equal(ds.clip_frac.values[0, 0, 0], [0.00, 0.05, 0.20, 0.40])  # clip_ratio/region_mean
    np.testing.assert_array_equal(ds.kl_ref.values[0, 0, 0], [0.000, 0.002, 0.010, 0.050])  # GRPOTrainer's kl is to π_ref
    # the eval row at step 2 joins the training row of that step; other steps have no eval
    np.testing.assert_array_equal(ds.val_reward.values[0, 0, 0], [np.nan, 0.60, np.nan, np.nan])
    assert "clip_ratio_low_mean" in ds and "run_name" not in ds
    config = json.loads(ds.attrs["config"])
    assert config["dropped"] == ["run_name"]
    # η read from the log: the peak of TRL's learning_rate schedule 1e-6 → 2e-7
    assert (int(ds.tau.item()), float(ds.eta.item()), config["tau_source"]) == (4, 1e-6, "given")
    assert config["eta_source"].startswith("log (learning_rate")


def test_verl_file_logger_maps_onto_our_names():
    ds = import_log(DATA / "verl_file_logger.jsonl", "verl", tau=2, eta=3e-7, seed=5)
    np.testing.assert_array_equal(ds.reward.values[0, 0, 0], [0.30, 0.45, 0.10])  # critic/score/mean
    np.testing.assert_array_equal(ds.clip_frac.values[0, 0, 0], [0.001, 0.004, 0.030])  # actor/pg_clipfrac
    np.testing.assert_array_equal(ds.ess.values[0, 0, 0], [0.99, 0.97, 0.80])  # rollout_corr/rollout_is_eff_sample_size
    np.testing.assert_array_equal(ds.kl_ref.values[0, 0, 0], [0.001, 0.002, 0.010])  # actor/kl_loss
    assert {"actor_ppo_kl", "rollout_corr_k3_kl", "actor_pg_clipfrac_lower"} <= set(ds.data_vars)
    assert list(ds.seed.values) == [5] and float(ds.eta.item()) == 3e-7 and int(ds.tau.item()) == 2


def test_csv_export_with_tracker_prefixes():
    ds = import_log(DATA / "trl_wandb_export.csv", "trl", tau=1, eta=1e-6)
    assert list(ds.step.values) == [0, 1, 2]
    np.testing.assert_array_equal(ds.reward.values[0, 0, 0], [0.5, 0.6, 0.4])
    assert {"clip_frac", "kl_ref", "learning_rate"} <= set(ds.data_vars)


def test_async_trl_kl_is_not_taken_for_kl_ref(tmp_path):
    log = tmp_path / "async.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "reward": 0.5, "kl": 0.01 * s, "ratio": 1.0,
                                         "weight_sync_time_s": 0.3}) for s in range(3)))
    ds = import_log(log, "trl", tau=5, eta=1e-6)
    assert "kl_ref" not in ds and "kl" in ds  # AsyncGRPOTrainer's kl is drift to the sampler, kept as is


def test_a_mapped_metric_with_text_values_is_dropped_not_half_read(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "reward": r, "kl": 0.1}) for s, r in enumerate([0.5, "n/a"])))
    ds = import_log(log, "trl", tau=1, eta=1e-6)
    assert "reward" not in ds and json.loads(ds.attrs["config"])["dropped"] == ["reward"]


def test_tau_and_eta_come_from_the_log_when_it_records_them(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "reward": 1.0, "tau": 3, "learning_rate": 2e-6}) for s in range(4)))
    ds = import_log(log, "trl")
    config = json.loads(ds.attrs["config"])
    assert (int(ds.tau.item()), float(ds.eta.item())) == (3, 2e-6)
    assert (config["tau_source"], config["eta_source"]) == ("log", "log (learning_rate)")


def test_cli_writes_a_store_that_reads_back(repro, tmp_path):
    out = tmp_path / "imported.nc"
    code, stdout, err = repro("import", "--framework", "verl", "--log", DATA / "verl_file_logger.jsonl",
                              "--tau", 2, "--eta", "1e-6", "--seed", 1, "--out", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["steps"] == 3 and summary["renamed"]["critic/score/mean"] == "reward"
    ds = open_store(out, required=("reward", "clip_frac", "ess", "kl_ref"), dims=("tau", "eta", "seed", "step"))
    assert int(ds.tau.item()) == 2 and float(ds.eta.item()) == 1e-6
    assert set(METRICS) & set(ds.data_vars) == {"reward", "clip_frac", "ess", "kl_ref"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("--tau", 0), "--tau"),
        (("--tau", 2, "--eta", "nan"), "--eta"),
        (("--tau", 2, "--eta", "-1e-6"), "--eta"),
        (("--tau", 2, "--eta", "1e-6,2e-6"), "--eta"),
        (("--tau", 2,), "the log does not record eta"),
        (("--eta", "1e-6",), "the log does not record tau"),
    ],
)
def test_cli_rejects_bad_run_values(repro, tmp_path, args, message):
    log = tmp_path / "run.jsonl"
    log.write_text(json.dumps({"step": 0, "reward": 1.0}))
    code, out, err = repro("import", "--framework", "trl", "--log", log, "--out", tmp_path / "x.nc", *args)
    assert code == 2 and out == "" and not (tmp_path / "x.nc").exists()
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error:") and message in err


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"step": 0, "reward": 1}\nnot json\n', "line 2 is not JSON"),
        ('{"step": -1, "reward": 1}\n', "is not a step number"),
        ('{"step": 1.5, "reward": 1}\n', "is not a step number"),
        ("[1, 2]", "must be a JSON object"),
        ("", "holds no log rows"),
    ],
)
def test_malformed_logs_give_one_line_errors(repro, tmp_path, text, message):
    log = tmp_path / "bad.jsonl"
    log.write_text(text)
    code, _, err = repro("import", "--framework", "verl", "--log", log, "--tau", 1, "--eta", "1e-6",
                         "--out", tmp_path / "x.nc")
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_sanitized_names_are_valid_netcdf_names(name):
    clean = sanitize(name)
    assert clean and "/" not in clean and not clean[0].isdigit()
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in clean)


def test_reused_batches_carry_their_reward_and_are_not_read_as_divergence(tmp_path):
    from theory.collapse import collapse_step

    # steps_per_generation = 2: TRL logs the reward on generating steps 1, 3, 5, ... only
    log = tmp_path / "trainer_state.json"
    rows = [{"step": s, "loss": 0.1, **({"reward": 0.5} if s % 2 else {})} for s in range(1, 41)]
    log.write_text(json.dumps({"log_history": rows}))
    ds = import_log(log, "trl", tau=2, eta=1e-6)
    assert list(ds.step.values) == list(range(40))
    np.testing.assert_array_equal(ds.reward.values[0, 0, 0], 0.5)
    assert collapse_step(ds.reward.values).item() == -1
