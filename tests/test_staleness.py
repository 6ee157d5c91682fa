"""`repro tau`: framework configs → the effective τ of THEORY.md §3.

Expected τ values are computed by hand in the comment at the top of each
example config under tests/data/frameworks/.
"""

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.config_files import read_config
from integrations.staleness import FRAMEWORKS, translate

DATA = Path(__file__).parent / "data" / "frameworks"

EXAMPLES = [
    # file, framework, τ, trainer
    ("trl_default.yaml", "trl", 1, "GRPOTrainer"),
    ("trl_grpo.yaml", "trl", 4, "GRPOTrainer"),
    ("trl_straddle.yaml", "trl", 2, "GRPOTrainer"),
    ("trl_async.yaml", "trl", 9, "AsyncGRPOTrainer"),
    ("areal.yaml", "areal", 6, "async PPO"),
    ("prime_rl.toml", "prime-rl", 5, "orchestrator + trainer"),
    ("verl_v1_async.yaml", "verl", 8, "V1 trainer (separate_async)"),
    ("verl_fully_async.yaml", "verl", 8, "fully_async_policy"),
    ("nemo_rl.yaml", "nemo-rl", 6, "async GRPO"),
    ("openrlhf.sh", "openrlhf", 6, "async PPO"),
]


def test_every_framework_has_an_example():
    assert {framework for _, framework, _, _ in EXAMPLES} == set(FRAMEWORKS)


@pytest.mark.parametrize("name, framework, tau, trainer", EXAMPLES)
def test_example_configs_give_the_hand_computed_tau(repro, name, framework, tau, trainer):
    code, out, err = repro("tau", "--framework", framework, "--config", DATA / name, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["tau"], result["max_lag"], result["trainer"]) == (tau, tau - 1, trainer)
    assert type(result["tau"]) is int  # feeds `repro advise --tau` as is
    assert result["formula"].startswith("τ =") and str(tau) in result["formula"]
    assert result["knobs"] and result["source"]


def test_text_output_names_tau_formula_and_warnings(repro):
    code, out, _ = repro("tau", "--framework", "trl", "--config", DATA / "trl_grpo.yaml")
    assert code == 0
    assert out.splitlines()[0] == "τ = 4 learner steps per rollout batch (max lag 3)"
    assert any(line.startswith("formula: τ =") for line in out.splitlines())
    assert any(line.startswith("warning: knobs compound") for line in out.splitlines())


def test_trl_compounding_knobs_warn_and_on_policy_default_does_not():
    compounding = translate("trl", DATA / "trl_grpo.yaml")
    assert any("compound" in w and "num_iterations" in w for w in compounding.warnings)
    default = translate("trl", DATA / "trl_default.yaml")
    assert default.warnings == ()
    assert set(default.defaults) == {"num_iterations", "steps_per_generation"}


def test_misaligned_trl_batches_warn():
    assert any("PR #3493" in w for w in translate("trl", DATA / "trl_straddle.yaml").warnings)


def test_missing_keys_take_documented_defaults():
    # AReaL: max_head_offpolicyness 0, ppo_n_minibatches 4 (areal/api/cli_args.py) → τ = (0+1)·4.
    result = FRAMEWORKS["areal"]({})
    assert (result.tau, set(result.defaults)) == (4, {"rollout.max_head_offpolicyness", "actor.ppo_n_minibatches"})
    assert any("default 0" in w for w in result.warnings)
    # PRIME-RL: max_off_policy_steps 8 → τ = 9; TRL async: max_staleness 4, weight_sync_steps 1 → τ = 5.
    assert FRAMEWORKS["prime-rl"]({}).tau == 9
    assert FRAMEWORKS["trl"]({"weight_sync_steps": 1}).tau == 5
    # verl V1 sync: ppo_epochs 1 · train_batch_size 1024 / ppo_mini_batch_size 256 = 4; async off elsewhere.
    assert FRAMEWORKS["verl"]({}).tau == 4
    assert FRAMEWORKS["nemo-rl"]({}).tau == 1  # 32·16/512, async disabled
    assert FRAMEWORKS["openrlhf"]({}).tau == 8  # 1024·1/128, async disabled


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
    assert trl_async.tau == areal.tau == (lag + 1) * per_version and trl_async.max_lag == trl_async.tau - 1
    # the two knobs compound exactly when both multiply τ
    assert any("compound" in w for w in trl_async.warnings) == (lag > 0 and per_version > 1)


def test_dotted_and_nested_keys_read_alike(tmp_path):
    dotted = tmp_path / "nemo.json"
    dotted.write_text(json.dumps({"grpo.async_grpo.enabled": True, "grpo.async_grpo.max_trajectory_age_steps": 2,
                                  "grpo.num_prompts_per_step": 32, "grpo.num_generations_per_prompt": 16,
                                  "policy.train_global_batch_size": 256}))
    assert read_config(dotted)["grpo"]["async_grpo"] == {"enabled": True, "max_trajectory_age_steps": 2}
    assert translate("nemo-rl", dotted).tau == translate("nemo-rl", DATA / "nemo_rl.yaml").tau == 6


def test_launch_commands_read_like_yaml(tmp_path):
    # verl is launched with Hydra overrides (key=value), OpenRLHF with dotted flags (--key value, --key=value, --flag)
    verl = tmp_path / "run_verl.sh"
    verl.write_text(
        "python3 -m verl.trainer.main_ppo \\\n  data.train_batch_size=256 \\\n"
        "  actor_rollout_ref.actor.ppo_mini_batch_size=64 actor_rollout_ref.actor.ppo_epochs=1 \\\n"
        "  trainer.v1.trainer_mode=separate_async +trainer.v1.sampler.max_off_policy_threshold=2  # τ = 2·256/64\n"
    )
    assert translate("verl", verl).tau == translate("verl", DATA / "verl_v1_async.yaml").tau == 8
    flags = tmp_path / "openrlhf.args"
    flags.write_text("--train.async_enable --train.async_queue_size=2 --rollout.batch_size 128 "
                     "--rollout.n_samples_per_prompt 8 --train.batch_size 512")
    assert read_config(flags)["train"] == {"async_enable": True, "async_queue_size": 2, "batch_size": 512}


@pytest.mark.parametrize(
    "text, suffix, message",
    [
        ("max_staleness: -1\n", ".yaml", "max_staleness = -1 must be an integer ≥ 0"),
        ("gradient_accumulation_steps: four\n", ".yaml", "gradient_accumulation_steps = 'four'"),
        ("num_iterations: 2.5\n", ".yaml", "num_iterations = 2.5"),
        ("[unclosed\n", ".yaml", "cannot parse"),
        ('{"a": 1,,}', ".json", "cannot parse"),
        ("- 1\n- 2\n", ".yaml", "not a mapping"),
        ("generation_batch_size: 20\nper_device_train_batch_size: 8\n", ".yaml", "not divisible"),
    ],
)
def test_bad_configs_give_one_line_errors(repro, tmp_path, text, suffix, message):
    config = tmp_path / f"config{suffix}"
    config.write_text(text)
    code, out, err = repro("tau", "--framework", "trl", "--config", config)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error:") and message in err


def test_unknown_framework_and_missing_file_are_rejected(repro, tmp_path):
    code, _, err = repro("tau", "--framework", "ray", "--config", DATA / "areal.yaml")
    assert code == 2 and err.startswith("Error:") and "ray" in err
    code, _, err = repro("tau", "--framework", "trl", "--config", tmp_path / "absent.yaml")
    assert code == 2 and err.startswith("Error:") and "absent.yaml" in err
