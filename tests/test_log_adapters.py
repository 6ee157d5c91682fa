"""`repro import`: framework metric logs → a results store of one run (docs/theory.md §6 names), hiding nothing."""

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.logs import CROSSWALK, FORMATS, import_log, sanitize
from integrations.staleness import translate
from results import open_store
from analysis.events import collapse_step
from theory.metrics import METRICS

DATA = Path(__file__).parent / "data" / "logs"
CONFIGS = Path(__file__).parent / "data" / "frameworks"


def imported(path, framework, **kwargs):
    return import_log(path, framework, **kwargs).dataset


def values(ds, name):
    return ds[name].values.ravel()


def test_trl_trainer_state_maps_onto_our_names():
    result = import_log(DATA / "trl_trainer_state.json", "trl", tau=4)
    ds = result.dataset
    assert ds.reward.dims == ("tau", "eta", "seed", "step") and list(ds.step.values) == [0, 1, 2, 3]  # from 1
    np.testing.assert_array_equal(values(ds, "reward"), [0.50, 0.75, 0.25, 0.00])
    np.testing.assert_array_equal(values(ds, "clip_frac"), [0.00, 0.05, 0.20, 0.40])  # clip_ratio/region_mean
    np.testing.assert_array_equal(values(ds, "kl_ref"), [0.000, 0.002, 0.010, 0.050])  # GRPOTrainer's kl is to π_ref
    # the eval row at global step 2 read the weights after 2 updates: θ_2, step t = 2 (as the TRL callback)
    np.testing.assert_array_equal(values(ds, "val_reward"), [np.nan, np.nan, 0.60, np.nan])
    assert "clip_ratio_low_mean" in ds and "run_name" not in ds and values(ds, "nan_step").item() == -1
    config = json.loads(ds.attrs["config"])
    # η read from the log: the peak of TRL's learning_rate schedule 1e-6 → 2e-7
    assert (int(ds.tau.item()), float(ds.eta.item()), config["tau_source"]) == (4, 1e-6, "given")
    assert config["eta_source"].startswith("log (learning_rate") and result.summary["log_window"] == 1


def test_verl_file_logger_maps_onto_our_names():
    ds = imported(DATA / "verl_file_logger.jsonl", "verl", tau=2, eta=3e-7, seed=5)
    np.testing.assert_array_equal(values(ds, "reward"), [0.30, 0.45, 0.10])  # critic/score/mean
    np.testing.assert_array_equal(values(ds, "clip_frac"), [0.001, 0.004, 0.030])  # actor/pg_clipfrac
    np.testing.assert_array_equal(values(ds, "ess"), [0.99, 0.97, 0.80])  # rollout_corr/rollout_is_eff_sample_size
    np.testing.assert_array_equal(values(ds, "kl_ref"), [0.001, 0.002, 0.010])  # actor/kl_loss
    assert {"actor_ppo_kl", "rollout_corr_k3_kl", "actor_pg_clipfrac_lower"} <= set(ds.data_vars)
    assert list(ds.seed.values) == [5] and float(ds.eta.item()) == 3e-7 and int(ds.tau.item()) == 2


def test_verl_steps_become_optimizer_steps_with_the_runs_config():
    # verl_v1_async.yaml: 4 optimizer steps per global step (weight version), τ = 8
    rule = translate("verl", CONFIGS / "verl_v1_async.yaml")
    result = import_log(DATA / "verl_file_logger.jsonl", "verl", eta=1e-6, staleness=rule)
    assert list(result.dataset.step.values) == [0, 4, 8] and int(result.dataset.tau.item()) == 8
    assert result.summary["step_unit"] == "optimizer step" and not result.summary["warnings"]
    bare = import_log(DATA / "verl_file_logger.jsonl", "verl", tau=8, eta=1e-6)
    assert bare.summary["step_unit"] == "verl step" and any("give --config" in w for w in bare.summary["warnings"])


def test_async_trl_kl_is_not_taken_for_kl_ref(tmp_path):
    log = tmp_path / "async.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "reward": 0.5, "kl": 0.01 * s, "ratio": 1.0,
                                         "weight_sync_time_s": 0.3}) for s in range(3)))
    ds = imported(log, "trl", tau=5, eta=1e-6)
    assert "kl_ref" not in ds and "kl" in ds  # AsyncGRPOTrainer's kl is drift to the sampler, kept as is


@pytest.mark.parametrize("bad", [None, "NaN", float("nan"), float("inf"), "n/a"])
def test_a_bad_reward_marks_the_run_diverged_from_that_step(tmp_path, bad):
    # steps 1..20 (TRL counts after the update); the reward goes bad at global step 11 → t = 10, never carried over
    rows = [{"step": s, "loss": 0.1, "reward": 0.5 if s <= 10 else bad, "kl": 0.01} for s in range(1, 21)]
    log = tmp_path / "trainer_state.json"
    log.write_text(json.dumps({"log_history": rows, "logging_steps": 1}, allow_nan=True))
    result = import_log(log, "trl", tau=2, eta=1e-6)
    ds = result.dataset
    assert values(ds, "nan_step").item() == 10 and result.summary["nan_step"] == 10
    assert (values(ds, "reward")[:10] == 0.5).all() and np.isnan(values(ds, "reward")[10:]).all()
    assert np.isnan(values(ds, "kl_ref")[10:]).all() and "reward" in ds  # every series, no dropped column
    assert collapse_step(values(ds, "reward")).item() == 10  # §6: a NaN tail is a divergence, never censored
    assert "DIVERGED at step 10" in result.text()


def test_a_diverged_wandb_export_is_read_as_diverged():
    result = import_log(DATA / "wandb_ui_export.csv", "trl", tau=1, eta=1e-6)
    np.testing.assert_array_equal(values(result.dataset, "reward")[:3], [0.31, 0.38, 0.44])
    assert result.summary["nan_step"] == 3 and result.summary["divergence"] == "train/reward = 'NaN'"


def test_reused_batches_carry_their_reward_and_are_not_read_as_divergence(tmp_path):
    # steps_per_generation = 2: TRL logs the reward on generating steps 1, 3, 5, ... only
    log = tmp_path / "trainer_state.json"
    rows = [{"step": s, "loss": 0.1, **({"reward": 0.5} if s % 2 else {})} for s in range(1, 41)]
    log.write_text(json.dumps({"log_history": rows}))
    result = import_log(log, "trl", tau=2, eta=1e-6)
    assert list(result.dataset.step.values) == list(range(40))
    np.testing.assert_array_equal(values(result.dataset, "reward"), 0.5)
    assert collapse_step(values(result.dataset, "reward")).item() == -1
    assert any("20 step(s) log no reward" in w for w in result.summary["warnings"])


def test_windowed_logs_keep_their_step_coordinates_and_are_flagged(repro, tmp_path):
    result = import_log(DATA / "trl_trainer_state_windowed.json", "trl", tau=1)
    assert list(result.dataset.step.values) == [9, 19, 29, 39] and result.summary["log_window"] == 10
    assert json.loads(result.dataset.attrs["config"])["log_window"] == 10
    code, out, _ = repro("import", "--framework", "trl", "--log", DATA / "trl_trainer_state_windowed.json",
                         "--tau", 1, "--out", tmp_path / "w.nc")
    assert code == 0 and "warning: rows are logged every 10 steps" in out


def test_wandb_history_export_sparse_rows_and_eval():
    # run.history() of a TRL run: train/global_step is the step; an eval-only row; a row without the reward
    ds = imported(DATA / "wandb_history_export.csv", "trl", tau=1)
    assert list(ds.step.values) == [0, 1, 2] and float(ds.eta.item()) == 1e-6
    np.testing.assert_array_equal(values(ds, "reward"), [0.5, 0.5, 0.4])
    np.testing.assert_array_equal(values(ds, "val_reward"), [np.nan, np.nan, 0.61])
    np.testing.assert_array_equal(values(ds, "clip_frac"), [0.0, 0.01, 0.02])


def test_wandb_ui_export_of_several_runs_needs_a_run(repro, tmp_path):
    code, _, err = repro("import", "--framework", "trl", "--log", DATA / "wandb_ui_export_two_runs.csv",
                         "--tau", 1, "--eta", "1e-6", "--out", tmp_path / "x.nc")
    assert code == 2 and "W&B export of 2 runs (run-a, run-b); give --run NAME" in err
    ds = imported(DATA / "wandb_ui_export_two_runs.csv", "trl", tau=1, eta=1e-6, run="run-b")
    assert list(ds.step.values) == [0, 2]  # its empty cells at Step 2: nothing logged there, no step
    np.testing.assert_array_equal(values(ds, "reward"), [0.2, 0.3])


def test_tensorboard_event_files_with_arealss_staleness_in_optimizer_steps():
    rule = translate("areal", CONFIGS / "areal.yaml")  # 2 optimizer steps per weight version, τ = 6
    result = import_log(DATA / "areal_tensorboard", "areal", eta=1e-6, staleness=rule)
    ds = result.dataset
    assert result.summary["format"] == "TensorBoard" and list(ds.step.values) == [0, 2, 4, 6, 8, 10]
    np.testing.assert_allclose(values(ds, "staleness")[:4], [0.0, 2.0, 3.0, 3.0])  # versions × 2
    np.testing.assert_allclose(values(ds, "staleness_max")[:4], [0, 2, 4, 4])
    assert result.summary["nan_step"] == 8 and np.isnan(values(ds, "staleness")[4:]).all()  # NaN reward at version 4


@pytest.mark.parametrize(
    "log, framework, config, stale, steps",
    [
        # SkyRL: trainer steps of 1 optimizer step (skyrl_fully_async.sh: update_epochs_per_batch 1)
        ("skyrl_scan_history.jsonl", "skyrl", "skyrl_fully_async.sh", [0.0, 1.0, 1.5, 2.0, 2.5], [0, 1, 2, 3, 4]),
        # PipelineRL: stats/lag counts samples; 128 samples per optimizer step
        ("pipelinerl_scan_history.jsonl", "pipelinerl", "pipelinerl.yaml", [0.0, 1.0, 2.0, 2.0], [0, 1, 2, 3]),
        # ROLL: scheduler/off_policy_ratio in pipeline steps of 1 optimizer step (roll_async.yaml)
        ("roll_scan_history.jsonl", "roll", "roll_async.yaml", [0.0, 0.7, 0.8], [0, 1, 2]),
        # Tinker: progress/batch − sampling_client/step_mean training steps × 2 substeps
        ("tinker_metrics.jsonl", "tinker", "tinker_async.sh", [0.0, 1.0, 2.0, 3.0], [0, 2, 4, 6]),
        # miles: staleness in rollouts of 2 optimizer steps; rollout rows on rollout/step × 2, train rows as is
        ("miles_scan_history.jsonl", "miles", "miles_async.sh", [0, np.nan, 2, np.nan, 3, np.nan], [0, 1, 2, 3, 4, 5]),
        # PRIME-RL: trainer steps are optimizer steps
        ("prime_rl_orchestrator.jsonl", "prime-rl", "prime_rl.toml", [0.0, 0.5, 0.8], [0, 1, 2]),
    ],
)
def test_realised_staleness_series_in_optimizer_steps(log, framework, config, stale, steps):
    rule = translate(framework, CONFIGS / config)
    ds = imported(DATA / log, framework, eta=1e-6, staleness=rule)
    assert list(ds.step.values) == steps and int(ds.tau.item()) == rule.tau
    np.testing.assert_allclose(values(ds, "staleness"), stale)


@pytest.mark.parametrize(
    "log, framework, config, steps, reward, mapped",
    [
        # NeMo RL logs at step + 1; validation/accuracy read the weights after step 1 (t = 1 on the grid)
        ("nemo_rl_scan_history.jsonl", "nemo-rl", "nemo_rl.yaml", [0, 2, 4], [0.42, 0.47, 0.5],
         {"val_reward": "validation/accuracy"}),
        # OpenRLHF counts global steps (rollout batches) from 1; openrlhf.sh: 2 optimizer steps per batch
        ("openrlhf_scan_history.jsonl", "openrlhf", "openrlhf.sh", [0, 2, 4], [0.2, 0.25, 0.31],
         {"clip_frac": "train/ppo_clip_ratio", "kl_ref": "train/kl"}),
    ],
)
def test_nemo_rl_and_openrlhf_logs(log, framework, config, steps, reward, mapped):
    result = import_log(DATA / log, framework, eta=1e-6, staleness=translate(framework, CONFIGS / config))
    assert list(result.dataset.step.values) == steps
    np.testing.assert_allclose(values(result.dataset, "reward"), reward)
    assert mapped.items() <= result.summary["mapped"].items()


def test_the_miles_log_needs_its_config_to_align_rollout_and_train_rows(repro, tmp_path):
    code, _, err = repro("import", "--framework", "miles", "--log", DATA / "miles_scan_history.jsonl", "--tau", 6,
                         "--eta", "1e-6", "--out", tmp_path / "x.nc")
    assert code == 2 and "give --config" in err and len(err.strip().splitlines()) == 1
    code, out, err = repro("import", "--framework", "miles", "--log", DATA / "miles_scan_history.jsonl",
                           "--config", CONFIGS / "miles_async.sh", "--eta", "1e-6", "--out", tmp_path / "m.nc",
                           "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["tau"] == 6 and summary["steps"] == 6 and summary["mapped"]["reward"] == "rollout/raw_reward"


def test_tau_and_eta_come_from_the_log_when_it_records_them(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "reward": 1.0, "tau": 3, "learning_rate": 2e-6}) for s in range(4)))
    ds = imported(log, "trl")
    config = json.loads(ds.attrs["config"])
    assert (int(ds.tau.item()), float(ds.eta.item())) == (3, 2e-6)
    assert (config["tau_source"], config["eta_source"]) == ("log", "log (learning_rate)")


def test_cli_writes_a_store_that_reads_back(repro, tmp_path):
    out = tmp_path / "imported.nc"
    code, stdout, err = repro("import", "--framework", "verl", "--log", DATA / "verl_file_logger.jsonl",
                              "--tau", 2, "--eta", "1e-6", "--seed", 1, "--out", out, "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    assert summary["steps"] == 3 and summary["mapped"]["reward"] == "critic/score/mean"
    ds = open_store(out, required=("reward", "clip_frac", "ess", "kl_ref", "nan_step"),
                    dims=("tau", "eta", "seed", "step"))
    assert int(ds.tau.item()) == 2 and float(ds.eta.item()) == 1e-6
    assert set(METRICS) & set(ds.data_vars) == {"reward", "clip_frac", "ess", "kl_ref"}


def test_a_log_of_another_framework_is_named(repro, tmp_path):
    code, _, err = repro("import", "--framework", "verl", "--log", DATA / "trl_trainer_state.json", "--tau", 1,
                         "--out", tmp_path / "x.nc")
    assert code == 2 and "holds no verl reward (critic/score/mean); it reads as a trl log" in err
    code, _, err = repro("import", "--framework", "verl", "--log", DATA / "trl_trainer_state.json", "--tau", 1,
                         "--reward", "reward", "--eta", "1e-6", "--out", tmp_path / "x.nc")
    assert code == 0, err


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
    "name, data, message",
    [
        ("bad.jsonl", b'{"step": 1, "critic/score/mean": 1}\n{"step": 2, "critic/sc',
         "line 2 is not JSON (truncated?)"),
        ("bad.jsonl", b'{"step": -1, "critic/score/mean": 1}\n', "is not a step number"),
        ("bad.jsonl", b'{"step": 1.5, "critic/score/mean": 1}\n', "is not a step number"),  # wrong units: fractions
        ("bad.jsonl", b"[1, 2]", "must be a JSON object"),
        ("bad.jsonl", b"", "empty file"),
        ("bad.jsonl", b"  \n\n", "empty file"),
        ("bad.json", b'{"step": 1, "critic/score/mean": null}', "never a number"),
        ("bad.csv", b"step,critic/score/mean\n1,0.5\n2,0.6,7\n", "row 3 has 3 cells"),
        ("bad.csv", b"", "empty file"),
        ("log.bin", b"\x00\x01\x02PK\x03\x04" * 10, "binary file"),
        ("log.txt", b"\xff\xfe\x00\x00garbage", "binary file"),
        ("log.txt", b"\xc3\x28 latin", "not UTF-8"),
        ("run.log", b"step,reward\n1,0.5\n", "name the file .csv"),
        ("events.out.tfevents.1.host", b"\x10\x00\x00\x00\x00\x00\x00\x00abcd", "truncated"),
        ("events.out.tfevents.2.host", b"", "holds no scalars"),
    ],
)
def test_malformed_logs_give_one_line_errors(repro, tmp_path, name, data, message):
    log = tmp_path / name
    log.write_bytes(data)
    code, out, err = repro("import", "--framework", "verl", "--log", log, "--tau", 1, "--eta", "1e-6",
                           "--out", tmp_path / "x.nc")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err, err
    assert err.startswith("Error:")


def test_unreadable_formats_name_the_accepted_ones(repro, tmp_path):
    log = tmp_path / "model.safetensors"
    log.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}\x00\x00")
    code, _, err = repro("import", "--framework", "trl", "--log", log, "--tau", 1, "--out", tmp_path / "x.nc")
    assert code == 2 and FORMATS in err


def test_an_empty_tensorboard_folder_is_refused(repro, tmp_path):
    code, _, err = repro("import", "--framework", "areal", "--log", tmp_path, "--tau", 1, "--eta", "1e-6",
                         "--out", tmp_path / "x.nc")
    assert code == 2 and "no TensorBoard event file" in err


def test_every_crosswalk_maps_a_reward():
    assert all("reward" in source.keys for source in CROSSWALK.values())


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_sanitized_names_are_valid_netcdf_names(name):
    clean = sanitize(name)
    assert clean and "/" not in clean and not clean[0].isdigit()
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in clean)
