"""`repro tau`: framework configs → the effective τ of docs/theory.md §3, in optimizer steps, never guessed silently.

Expected τ values are computed by hand in the comment at the top of each example config under
tests/data/frameworks/ (each written in its framework's own format, from the file its rule cites).
"""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.config_files import read_config
from integrations.staleness import COMMITS, FRAMEWORKS, KNOBS, translate

DATA = Path(__file__).parent / "data" / "frameworks"

EXAMPLES = [
    # file, framework, τ, trainer, optimizer steps per version unit
    ("trl_default.yaml", "trl", 1, "GRPOTrainer", 1),
    ("trl_grpo.yaml", "trl", 4, "GRPOTrainer", 1),
    ("trl_straddle.yaml", "trl", 2, "GRPOTrainer", 1),
    ("trl_async.yaml", "trl", 9, "AsyncGRPOTrainer", 3),
    ("trl_async_defaults.yaml", "trl", 5, "AsyncGRPOTrainer", 1),
    ("areal.yaml", "areal", 6, "async PPO", 2),
    ("prime_rl.toml", "prime-rl", 5, "orchestrator + trainer", 1),
    ("verl_v1_async.yaml", "verl", 8, "V1 trainer (separate_async)", 4),
    ("verl_fully_async.yaml", "verl", 8, "fully_async_policy", 4),
    ("verl_one_step_off.sh", "verl", 12, "one_step_off_policy", 6),
    ("nemo_rl.yaml", "nemo-rl", 6, "async GRPO", 2),
    ("nemo_rl_recipe.yaml", "nemo-rl", 2, "async GRPO", 1),
    ("openrlhf.sh", "openrlhf", 6, "async PPO", 2),
    ("openrlhf_flat.sh", "openrlhf", 12, "async PPO", 4),
    ("skyrl_fully_async.sh", "skyrl", 5, "fully async", 1),
    ("roll_async.yaml", "roll", 2, "async pipeline", 1),
    ("pipelinerl.yaml", "pipelinerl", 3, "pipeline", 1 / 128),
    ("miles_async.sh", "miles", 6, "async", 2),
    ("miles_async.sh", "slime", 6, "async", 2),
    ("tinker_async.sh", "tinker", 6, "async", 2),
]


def test_every_framework_has_an_example_and_a_source():
    assert {framework for _, framework, *_ in EXAMPLES} == set(FRAMEWORKS) == set(COMMITS) == set(KNOBS)


@pytest.mark.parametrize("name, framework, tau, trainer, per_unit", EXAMPLES)
def test_example_configs_give_the_hand_computed_tau(repro, name, framework, tau, trainer, per_unit):
    code, out, err = repro("tau", "--framework", framework, "--config", DATA / name, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["tau"], result["max_lag"], result["trainer"]) == (tau, tau - 1, trainer)
    assert type(result["tau"]) is int  # feeds `repro advise --tau` as is
    assert result["steps_per_unit"] == pytest.approx(per_unit) and result["unit"]
    assert result["formula"].startswith("τ =") and str(tau) in result["formula"]
    assert result["knobs"] and COMMITS[framework] in result["source"]


def test_text_output_names_tau_unit_formula_and_warnings(repro):
    code, out, _ = repro("tau", "--framework", "trl", "--config", DATA / "trl_grpo.yaml")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "τ = 4 optimizer steps per rollout batch (max lag 3)"
    assert any(line.startswith("unit: trl counts versions in units of one optimizer step") for line in lines)
    assert any(line.startswith("formula: τ =") for line in lines)
    assert any(line.startswith("warning: knobs compound") for line in lines)
    code, out, _ = repro("tau", "--framework", "areal", "--config", DATA / "areal.yaml")
    assert "unit: areal counts versions in units of one weight version = 2 optimizer step(s)" in out


def test_trl_compounding_knobs_warn_and_on_policy_default_does_not():
    compounding = translate("trl", DATA / "trl_grpo.yaml")
    assert any("compound" in w and "num_iterations" in w for w in compounding.warnings)
    default = translate("trl", DATA / "trl_default.yaml")
    assert not any("compound" in w for w in default.warnings)
    assert set(default.defaults) == {"num_iterations", "per_device_train_batch_size", "steps_per_generation"}


def test_misaligned_trl_batches_warn():
    assert any("PR #3493" in w for w in translate("trl", DATA / "trl_straddle.yaml").warnings)


def test_trl_async_left_at_defaults_is_async_and_says_so():
    # AsyncGRPOConfig's queue_maxsize marks the trainer; max_staleness 4 and weight_sync_steps 1 are its defaults
    result = translate("trl", DATA / "trl_async_defaults.yaml")
    assert (result.trainer, result.tau, set(result.defaults)) == ("AsyncGRPOTrainer", 5,
                                                                  {"max_staleness", "weight_sync_steps"})
    assert any(w.startswith("2 of 2 knobs are trl's defaults") for w in result.warnings)


def test_trl_generation_batch_needs_the_process_count(repro):
    config = DATA / "trl_generation_batch.yaml"
    code, out, err = repro("tau", "--framework", "trl", "--config", config)
    assert code == 2 and out == "" and "--processes" in err and len(err.strip().splitlines()) == 1
    assert translate("trl", config, processes=2).tau == 2 and translate("trl", config, processes=1).tau == 4
    code, out, _ = repro("tau", "--framework", "trl", "--config", config, "--processes", 2, "--json")
    assert code == 0 and json.loads(out)["knobs"]["num_processes"] == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("generation_batch_size: 64\nsteps_per_generation: 4\n", "can not be both configured"),
        ("max_staleness: 2\nnum_iterations: 2\n", "mixes AsyncGRPOConfig fields (max_staleness)"),
        ("generation_batch_size: 20\nper_device_train_batch_size: 8\nnum_processes: 1\n", "must be divisible by the "
                                                                                          "global batch size"),
        ("generation_batch_size: 24\nper_device_train_batch_size: 8\nnum_processes: 1\nnum_generations: 16\n",
         "divisible by num_generations"),
    ],
)
def test_configs_trl_refuses_are_refused_with_its_reason(repro, tmp_path, text, message):
    config = tmp_path / "config.yaml"
    config.write_text(text)
    code, out, err = repro("tau", "--framework", "trl", "--config", config)
    assert code == 2 and out == "" and err.startswith("Error:") and message in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "framework, text, suffix, message",
    [
        ("nemo-rl", "grpo:\n  async_grpo:\n    enabled: true\n", ".yaml", "Importance sampling correction"),
        ("openrlhf", "--train.partial_rollout_enable --train.batch_size 64", ".sh", "requires --train.async_enable"),
        ("openrlhf", "--async_train --train.batch_size 64", ".sh", "mixes OpenRLHF's older flat flags"),
        ("skyrl", "trainer.fully_async.enabled=true trainer.train_batch_size=64 trainer.policy_mini_batch_size=32",
         ".sh", "train_batch_size must equal policy_mini_batch_size"),
        ("verl", "trainer.v1.trainer_mode=separate_async data.train_batch_size=256 "
                 "actor_rollout_ref.actor.ppo_mini_batch_size=32", ".sh", "parameter_sync_step * ppo_mini_batch_size"),
        ("roll", "async_generation_ratio: 1\ngenerate_opt_level: 0\n", ".yaml", "generate_opt_level = 1"),
        ("miles", "python train.py --rollout-batch-size 8 --num-steps-per-rollout 2 --global-batch-size 7", ".sh",
         "is not equal to rollout_batch_size"),
    ],
)
def test_configs_a_framework_refuses_are_refused(repro, tmp_path, framework, text, suffix, message):
    config = tmp_path / f"config{suffix}"
    config.write_text(text)
    code, out, err = repro("tau", "--framework", framework, "--config", config)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_a_config_without_the_frameworks_knobs_is_refused(repro, tmp_path, framework):
    config = tmp_path / "foo.yaml"
    config.write_text("foo: 1\n")
    code, out, err = repro("tau", "--framework", framework, "--config", config)
    assert code == 2 and out == "" and f"sets none of {framework}'s staleness knobs" in err
    assert len(err.strip().splitlines()) == 1


def test_a_config_of_another_framework_is_named(repro):
    code, _, err = repro("tau", "--framework", "trl", "--config", DATA / "verl_v1_async.yaml")
    assert code == 2 and "it reads as a verl config" in err
    code, _, err = repro("tau", "--framework", "areal", "--config", DATA / "nemo_rl.yaml")
    assert code == 2 and "it reads as a nemo-rl config" in err


def test_accept_defaults_names_every_default_and_warns(repro, tmp_path):
    config = tmp_path / "empty.yaml"
    config.write_text("experiment_name: x\n")
    code, out, err = repro("tau", "--framework", "areal", "--config", config, "--accept-defaults", "--json")
    assert code == 0, err
    result = json.loads(out)
    # AReaL: max_head_offpolicyness 0, ppo_n_minibatches 4 (areal/api/cli_args.py) → τ = (0+1)·4
    assert result["tau"] == 4 and set(result["defaults"]) == {"rollout.max_head_offpolicyness",
                                                              "actor.ppo_n_minibatches"}
    assert any(w.startswith("2 of 2 knobs are areal's defaults") for w in result["warnings"])


def test_missing_keys_take_the_frameworks_defaults():
    assert FRAMEWORKS["prime-rl"]({}).tau == 9  # max_off_policy_steps 8
    assert FRAMEWORKS["trl"]({"weight_sync_steps": 1}).tau == 5  # max_staleness 4
    # verl main trainer, V1 sync: ppo_epochs 1 · train_batch_size 1024 / ppo_mini_batch_size 256 = 4
    assert FRAMEWORKS["verl"]({}).tau == 4
    assert FRAMEWORKS["nemo-rl"]({}).tau == 1  # 32·16/512, async disabled
    assert FRAMEWORKS["openrlhf"]({}).tau == 8  # 1024·1/128, async disabled
    assert FRAMEWORKS["skyrl"]({}).tau == 4  # 1024/256, synchronous
    assert FRAMEWORKS["tinker"]({}).tau == 1


def test_nemo_rl_reads_its_defaults_parent_and_names_a_missing_one(repro, tmp_path):
    recipe = read_config(DATA / "nemo_rl_recipe.yaml", inherit=True)
    assert recipe["grpo"]["async_grpo"] == {"enabled": True, "max_trajectory_age_steps": 1,
                                            "in_flight_weight_updates": True}
    assert recipe["policy"]["train_micro_batch_size"] == 4  # from the parent
    orphan = tmp_path / "recipe.yaml"
    orphan.write_text((DATA / "nemo_rl_recipe.yaml").read_text())
    code, _, err = repro("tau", "--framework", "nemo-rl", "--config", orphan)
    assert code == 2 and "its defaults file nemo_rl_parent.yaml is not at" in err


def test_launch_scripts_expand_their_variables(tmp_path):
    config = read_config(DATA / "verl_one_step_off.sh")
    assert config["__entry__"] == "verl.experimental.one_step_off_policy.main_ppo"
    assert config["actor_rollout_ref"]["actor"]["ppo_mini_batch_size"] == 192  # $((train_prompt_bsz / 6))
    assert config["trainer"]["n_gpus_per_node"] == 6 and config["trainer"]["logger"] == ["console", "tensorboard"]
    unset = tmp_path / "run.sh"
    unset.write_text("python3 -m verl.trainer.main_ppo data.train_batch_size=${BATCH} "
                     "actor_rollout_ref.actor.ppo_mini_batch_size=64\n")
    with pytest.raises(ValueError, match="data.train_batch_size = '<unset>' reads a shell variable"):
        translate("verl", unset)
    defaulted = tmp_path / "defaulted.sh"
    defaulted.write_text("python3 -m verl.trainer.main_ppo data.train_batch_size=${BATCH:-256} "
                         "actor_rollout_ref.actor.ppo_mini_batch_size=64\n")
    assert translate("verl", defaulted).tau == 4
    # SkyRL's `: "${VAR:=default}"` assigns; a quoted JSON spanning lines (slime's RUNTIME_ENV_JSON) is one word
    idioms = tmp_path / "idioms.sh"
    idioms.write_text(': "${MINI:=64}"\nENV_JSON="{\n  \\"a\\": 1\n}"\npkill -9 python\n'
                      "ray job submit -- python3 train_async.py --rollout-batch-size ${MINI} --global-batch-size 64\n")
    config = read_config(idioms)
    assert config["ENV_JSON"] == {"a": 1} and "" not in config
    assert {k: config[k] for k in ("__entry__", "rollout_batch_size", "global_batch_size")} == {
        "__entry__": "train_async.py", "rollout_batch_size": 64, "global_batch_size": 64}
    assert translate("slime", idioms).trainer == "async"


def test_verl_trainers_by_entry_module_and_by_choice(tmp_path):
    script = tmp_path / "run.sh"
    script.write_text("python3 -m verl.trainer.main_ppo data.train_batch_size=256 "
                      "actor_rollout_ref.actor.ppo_mini_batch_size=64\n")
    assert translate("verl", script).trainer == "V1 trainer (sync)"
    assert translate("verl", script, trainer="one-step-off").tau == 8
    with pytest.raises(ValueError, match="not a verl trainer"):
        translate("verl", script, trainer="async")


@pytest.mark.parametrize(
    "framework, text, message",
    [
        ("miles", "--rollout-batch-size 8 --global-batch-size 8", "give --trainer sync or --trainer async"),
        ("miles", "python train_async.py --fully-async --rollout-batch-size 8 --global-batch-size 8",
         "without --max-weight-staleness"),
        ("slime", "python train.py --n-samples-per-prompt 8", "rollout_batch_size is not set"),
        ("pipelinerl", "finetune:\n  train_batch_size: 4\n", "max_lag is null"),
        ("roll", "async_generation_ratio: 1\n", "actor_train.device_mapping is not set"),
    ],
)
def test_configs_without_a_bound_or_a_required_knob_are_refused(repro, tmp_path, framework, text, message):
    config = tmp_path / ("config.yaml" if ":" in text.split()[0] else "config.sh")
    config.write_text(text)
    code, out, err = repro("tau", "--framework", framework, "--config", config)
    assert code == 2 and out == "" and message in err and len(err.strip().splitlines()) == 1


def _train_async_max_lag(interval, rollouts=40):
    """Run slime/miles train_async.py's loop: generate r+1 while r trains, push every `interval` rollouts."""
    engine, learner, worst = 0, 0, 0  # weights versions, counted in rollouts trained
    future = engine  # version that generates rollout 0
    current = None
    for rollout in range(rollouts):
        if future is not None:
            current = future
        future = engine  # the next rollout starts now, with the engine's weights
        worst = max(worst, learner - current)
        learner += 1  # train on rollout `rollout`
        if (rollout + 1) % interval == 0:
            current, future = future, None  # wait for the rollout in flight, then push
            engine = learner
    return worst


@pytest.mark.parametrize("interval", [1, 2, 3, 5])
def test_train_async_rule_matches_a_simulation_of_its_loop(interval):
    config = {"__entry__": "train_async.py", "rollout_batch_size": 4, "global_batch_size": 4,
              "update_weights_interval": interval}
    assert FRAMEWORKS["slime"](config).max_lag == _train_async_max_lag(interval)  # one optimizer step per rollout


def _simulated_max_lag(per_generation, iterations, accumulation, micro_steps=400):
    """Run TRL's micro-step schedule: regenerate every spg·μ micro-steps, step every GA micro-steps."""
    updates, batch_version, worst = 0, 0, 0
    for micro in range(micro_steps):
        if micro % (per_generation * iterations) == 0:
            batch_version = updates
        worst = max(worst, updates - batch_version)
        if (micro + 1) % accumulation == 0:
            updates += 1
    return worst


@settings(max_examples=60, derandomize=True, deadline=None)
@given(st.integers(1, 12), st.integers(1, 4), st.integers(1, 12))
def test_trl_tau_matches_a_simulation_of_its_schedule(per_generation, iterations, accumulation):
    config = {"steps_per_generation": per_generation, "num_iterations": iterations,
              "gradient_accumulation_steps": accumulation}
    result = FRAMEWORKS["trl"](config)
    assert result.max_lag == _simulated_max_lag(per_generation, iterations, accumulation)


@settings(max_examples=30, derandomize=True, deadline=None)
@given(st.integers(0, 16), st.integers(1, 8))
def test_async_tau_is_lag_plus_one_times_steps_per_version(lag, per_version):
    trl_async = FRAMEWORKS["trl"]({"max_staleness": lag, "weight_sync_steps": per_version})
    areal = FRAMEWORKS["areal"]({"rollout": {"max_head_offpolicyness": lag},
                                 "actor": {"ppo_n_minibatches": per_version}})
    tinker = FRAMEWORKS["tinker"]({"max_steps_off_policy": lag, "num_substeps": per_version})
    assert trl_async.tau == areal.tau == tinker.tau == (lag + 1) * per_version
    assert trl_async.max_lag == trl_async.tau - 1 and trl_async.steps_per_unit == per_version
    # the two knobs compound exactly when both multiply τ
    assert any("compound" in w for w in trl_async.warnings) == (lag > 0 and per_version > 1)


def test_dotted_and_nested_keys_read_alike(tmp_path):
    dotted = tmp_path / "nemo.json"
    dotted.write_text(json.dumps({"grpo.async_grpo.enabled": True, "grpo.async_grpo.max_trajectory_age_steps": 2,
                                  "grpo.async_grpo.in_flight_weight_updates": True,
                                  "loss_fn.use_importance_sampling_correction": True,
                                  "grpo.num_prompts_per_step": 32, "grpo.num_generations_per_prompt": 16,
                                  "policy.train_global_batch_size": 256}))
    assert read_config(dotted)["grpo"]["async_grpo"]["max_trajectory_age_steps"] == 2
    assert translate("nemo-rl", dotted).tau == translate("nemo-rl", DATA / "nemo_rl.yaml").tau == 6


def test_launch_flags_read_like_yaml(tmp_path):
    flags = tmp_path / "openrlhf.args"
    flags.write_text("--train.async_enable --train.async_queue_size=2 --rollout.batch_size 128 "
                     "--rollout.n_samples_per_prompt 8 --train.batch_size 512")
    assert read_config(flags)["train"] == {"async_enable": True, "async_queue_size": 2, "batch_size": 512}
    dashes = tmp_path / "miles.args"
    dashes.write_text("--max-weight-staleness 2 --fully-async")
    assert read_config(dashes) == {"max_weight_staleness": 2, "fully_async": True}


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("max_staleness: -1\n", ".yaml", "max_staleness = -1 must be an integer ≥ 0"),
        ("gradient_accumulation_steps: four\n", ".yaml", "gradient_accumulation_steps = 'four'"),
        ("num_iterations: 2.5\n", ".yaml", "num_iterations = 2.5"),  # a fraction where TRL counts passes
        ("[unclosed\n", ".yaml", "cannot parse"),
        ("gradient_accumulation_steps: 4\nnum_iter", ".yaml", "cannot parse"),  # truncated
        ('{"a": 1,,}', ".json", "cannot parse"),
        ("- 1\n- 2\n", ".yaml", "not a mapping"),
        ("", ".yaml", "sets none of trl's staleness knobs"),
        ("max_staleness = 2\n[table\n", ".toml", "cannot parse"),
    ],
)
def test_bad_configs_give_one_line_errors(repro, tmp_path, text, suffix, message):
    config = tmp_path / f"config{suffix}"
    config.write_text(text)
    code, out, err = repro("tau", "--framework", "trl", "--config", config)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error:") and message in err


@pytest.mark.parametrize("data, message", [(b"\x00\x01binary\x00", "binary file"), (b"\xff\xfe\xfa", "not UTF-8")])
def test_binary_configs_are_refused(repro, tmp_path, data, message):
    config = tmp_path / "config.yaml"
    config.write_bytes(data)
    code, _, err = repro("tau", "--framework", "verl", "--config", config)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_unknown_framework_trainer_and_missing_file_are_rejected(repro, tmp_path):
    code, _, err = repro("tau", "--framework", "ray", "--config", DATA / "areal.yaml")
    assert code == 2 and err.startswith("Error:") and "ray" in err
    code, _, err = repro("tau", "--framework", "trl", "--config", tmp_path / "absent.yaml")
    assert code == 2 and err.startswith("Error:") and "absent.yaml" in err
    code, _, err = repro("tau", "--framework", "areal", "--config", DATA / "areal.yaml", "--trainer", "async")
    assert code == 2 and "areal has one" in err
    code, _, err = repro("tau", "--framework", "trl", "--config", DATA / "trl_grpo.yaml", "--processes", 0)
    assert code == 2 and "--processes 0" in err
