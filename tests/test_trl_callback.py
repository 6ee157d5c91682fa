"""StalenessProbe on a real trl.GRPOTrainer run (tiny Llama, CPU): the store, and what reads it."""

import json

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import LlamaForCausalLM, PrinterCallback, TrainerControl, TrainerState
from trl import GRPOConfig, GRPOTrainer

from analysis import analyze, load_sweep
from analysis.warning import Thresholds
from figures.report import render_all
from integrations.combine import combine_stores
from integrations.staleness import trl as trl_staleness
from integrations.trl_callback import PER_STEP, StalenessGuard, StalenessProbe, behaviour_step
from llm.model import tiny_model, tiny_tokenizer
from llm.tasks import NUMBER, Arithmetic, reward
from results import open_store, write_atomic
from theory.metrics import SWEEP_DIMS

TAU = 2  # steps_per_generation = 2, gradient_accumulation_steps = 1, num_iterations = 1
STABLE_ETA, COLLAPSING_ETA = 1e-2, 3e-2
PLANTED_T_STAR = 2  # the collapsing run's reward is 0 from its second generation batch, i.e. from step 1·τ


def grpo_config(out, eta, steps):
    return GRPOConfig(output_dir=str(out), use_cpu=True, bf16=False, report_to=[], save_strategy="no",
                      disable_tqdm=True, seed=0, learning_rate=eta, max_steps=steps, per_device_train_batch_size=4,
                      gradient_accumulation_steps=1, steps_per_generation=TAU, num_generations=4,
                      max_completion_length=4, temperature=1.0, beta=0.04, lr_scheduler_type="constant",
                      dataloader_num_workers=0)


def arithmetic_reward(completions, answer, **kwargs):
    """llm.tasks' binary reward, plus 0.5 for answering with a number, so an untrained policy gets a signal."""
    return [reward(c, a) + 0.5 * (NUMBER.match(c) is not None) for c, a in zip(completions, answer)]


def train(root, name, eta, steps, reward_func=arithmetic_reward, **probe_kwargs):
    """One seeded GRPOTrainer run with a StalenessProbe; returns (trainer, probe, store path)."""
    torch.manual_seed(0)
    tokenizer = tiny_tokenizer()
    tokenizer.padding_side = "left"
    # GRPOTrainer builds its reference model (beta ≠ 0) from the policy's path, so the policy is loaded from one
    tiny_model("small", tokenizer, seed=0).save_pretrained(root / "tiny")
    model = LlamaForCausalLM.from_pretrained(root / "tiny")
    problems = Arithmetic().train(np.random.default_rng(0), 64)
    dataset = Dataset.from_list([{"prompt": p.prompt, "answer": p.answer} for p in problems])
    probe = StalenessProbe(out=root / f"{name}.nc", **probe_kwargs)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_func, args=grpo_config(root / name, eta, steps),
                          train_dataset=dataset, processing_class=tokenizer, callbacks=[probe])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    return trainer, probe, root / f"{name}.nc"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("trl")
    generations = []

    # a planted collapse, so the fit below has a known t*: reward 0 from the second generation batch on
    def collapsing_reward(completions, answer, **kwargs):
        generations.append(len(completions))
        return [0.0] * len(completions) if len(generations) > 1 else arithmetic_reward(completions, answer)

    stable = train(root, "stable", STABLE_ETA, 8)
    collapsing = train(root, "collapsing", COLLAPSING_ETA, 16, collapsing_reward, stop_on_collapse=True)
    return root, stable, collapsing


def test_store_schema_and_coords_match_the_trainer(runs):
    _, (trainer, _, path), _ = runs
    ds = open_store(path, required=PER_STEP + ("nan_step",), dims=SWEEP_DIMS)
    assert all(ds[name].dims == SWEEP_DIMS for name in PER_STEP) and ds.nan_step.dims == SWEEP_DIMS[:3]
    args = trainer.args
    assert list(ds.step.values) == list(range(trainer.state.global_step)) and trainer.state.global_step == 8
    assert ds.tau.values.tolist() == [trl_staleness({"steps_per_generation": args.steps_per_generation,
                                                     "num_iterations": args.num_iterations,
                                                     "gradient_accumulation_steps": args.gradient_accumulation_steps}
                                                    ).tau] == [TAU]
    assert ds.eta.values.tolist() == [args.learning_rate] and ds.seed.values.tolist() == [args.seed]
    assert ds.nan_step.item() == -1
    assert json.loads(ds.attrs["config"])["trl_args"]["steps_per_generation"] == TAU


def test_parameter_probes(runs):
    _, (trainer, _, path), _ = runs
    s = {name: open_store(path)[name].values.ravel() for name in PER_STEP}
    eta, t = trainer.args.learning_rate, np.arange(8)
    assert s["drift"][0] == 0 and (s["drift"][1:] > 0).all() and s["drift"][-1] > s["drift"][1]
    assert (s["update_norm"] > 0).all() and np.isfinite(s["update_norm"]).all()
    # θ_1 − θ_0 is the first update, and ‖θ_{t+1} − θ_0‖ ≤ ‖θ_t − θ_0‖ + η‖u_t‖ (triangle inequality)
    np.testing.assert_allclose(s["drift"][1], eta * s["update_norm"][0], rtol=1e-5)
    assert (s["drift"][1:] <= (s["drift"][:-1] + eta * s["update_norm"][:-1]) * (1 + 1e-5)).all()
    # §3: τ_t = t mod τ; β_t = θ at the last sync, so stale_drift is 0 at syncs and one update after them
    np.testing.assert_array_equal(s["staleness"], t % TAU)
    assert (s["stale_drift"][t % TAU == 0] == 0).all()
    np.testing.assert_allclose(s["stale_drift"][1::2], eta * s["update_norm"][0::2], rtol=1e-5)
    assert np.isnan(s["grad_cos"][0]) and (np.abs(s["grad_cos"][1:]) <= 1).all()
    # consecutive surrogate gradients: a cosine from the second step on, not the applied-update one under Adam
    assert np.isnan(s["raw_grad_cos"][0]) and (np.abs(s["raw_grad_cos"][1:]) <= 1 + 1e-6).all()
    assert not np.allclose(s["raw_grad_cos"][1:], s["grad_cos"][1:], atol=1e-3)


def test_logged_metrics_line_up_with_trls_own_log(runs):
    _, (trainer, _, path), _ = runs
    s = {name: open_store(path)[name].values.ravel() for name in PER_STEP}
    rows = {row["step"] - 1: row for row in trainer.state.log_history if "loss" in row}  # TRL's step is after t
    # TRL logs a reward exactly at the steps our schedule calls syncs; it is carried while the batch is consumed
    assert [t for t, row in sorted(rows.items()) if "reward" in row] == [0, 2, 4, 6]
    np.testing.assert_array_equal(s["reward"], [rows[t - t % TAU]["reward"] for t in range(8)])
    np.testing.assert_array_equal(s["clip_frac"], [rows[t]["clip_ratio/region_mean"] for t in range(8)])
    np.testing.assert_array_equal(s["kl_ref"], [rows[t]["kl"] for t in range(8)])
    # fresh weights: ratios are 1 and π_θ = π_ref at step 0; the stale steps do clip
    assert (s["clip_frac"][::2] == 0).all() and s["clip_frac"][1::2].max() > 0 and s["kl_ref"][0] == 0
    assert np.isnan(s["ess"]).all() and np.isnan(s["val_reward"]).all()  # GRPOTrainer logs no ESS; no eval here


def test_collapse_is_detected_and_stops_training(runs):
    _, _, (trainer, probe, path) = runs
    ds = open_store(path)
    # the analysis' W(τ) = max(5, ⌈T/20⌉, 5τ) = 10 zero steps after t* = 2: training stopped after step 11 of 16
    assert probe.collapse_step == PLANTED_T_STAR and trainer.state.global_step == 12 == ds.sizes["step"]
    np.testing.assert_array_equal(ds.reward.values.ravel()[PLANTED_T_STAR:], 0)
    assert (ds.reward.values.ravel()[:PLANTED_T_STAR] > 0).all()


@pytest.fixture(scope="module")
def sweep(runs):
    root, (_, _, stable), (_, _, collapsing) = runs
    # the collapsing run stopped early and was padded to max_steps = 12; the stable one ran 8 steps
    combined = combine_stores([stable, collapsing], trim=True)
    path = root / "sweep.nc"
    write_atomic(combined, path)
    return path


def test_repro_analyze_reads_the_callback_store(repro, sweep):
    code, out, err = repro("analyze", "--store", sweep, "--boot", 10, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["tau"] == [TAU] and summary["eta"] == [STABLE_ETA, COLLAPSING_ETA]


def test_figures_read_the_callback_store(sweep, tmp_path):
    analysis = analyze(load_sweep(sweep), n_boot=10)
    assert analysis.events.collapsed.shape == (1, 2, 1)  # (τ, η, seed)
    written = render_all({"trl": sweep}, tmp_path, only="table2", n_boot=10)
    assert written and all(path.exists() for path in written)


def test_imported_trl_logs_match_the_probe_and_combine(repro, runs, tmp_path):
    _, (trainer, _, store), (collapsed, _, _) = runs
    imported = {}
    for name, run in (("stable", trainer), ("collapsing", collapsed)):
        log = tmp_path / f"{name}.json"
        run.state.save_to_json(str(log))
        imported[name] = tmp_path / f"{name}.nc"
        code, _, err = repro("import", "--framework", "trl", "--log", log, "--tau", TAU, "--out", imported[name])
        assert code == 0, err
    ds = open_store(imported["stable"])
    # the same metrics as the probe's store on the same steps (TRL's global_step 1.. is shifted to t = 0..)
    probe = open_store(store)
    np.testing.assert_array_equal(ds.clip_frac.values.ravel()[:8], probe.clip_frac.values.ravel())
    np.testing.assert_array_equal(ds.reward.values.ravel()[:8], probe.reward.values.ravel())
    assert list(ds.step.values[:8]) == list(range(8)) and float(ds.eta.item()) == STABLE_ETA
    collapsed_log = open_store(imported["collapsing"]).reward.values.ravel()
    assert (collapsed_log[PLANTED_T_STAR:] == 0).all() and (collapsed_log[:PLANTED_T_STAR] > 0).all()
    code, _, err = repro("combine", *imported.values(), "--out", tmp_path / "imported.nc")
    assert code == 2 and "different step grids" in err  # 8 and 7 steps: padding would read as divergence
    code, _, err = repro("combine", *imported.values(), "--trim", "--out", tmp_path / "imported.nc")
    assert code == 0, err
    code, out, err = repro("analyze", "--store", tmp_path / "imported.nc", "--boot", 10, "--json")
    assert code == 0, err


# ---------------------------------------------------------------- without a trainer run


@pytest.mark.parametrize("per_generation, iterations, accumulation",
                         [(2, 1, 1), (4, 1, 2), (2, 3, 2), (1, 1, 4), (4, 2, 8), (8, 1, 8)])
def test_behaviour_schedule_spans_the_translators_tau(per_generation, iterations, accumulation):
    window = per_generation * iterations
    lags = [t - behaviour_step(t, window, accumulation) for t in range(64)]
    tau = trl_staleness({"steps_per_generation": per_generation, "num_iterations": iterations,
                         "gradient_accumulation_steps": accumulation}).tau
    assert max(lags) + 1 == tau and min(lags) == 0 and lags[:tau] == list(range(tau))


def test_events_by_hand_eval_periodic_write_and_nan_weights(tmp_path):
    """The probe driven without a trainer, with known updates: +1 on every weight of one tensor per step."""
    model = tiny_model("small", tiny_tokenizer(), seed=0)
    weight, out = next(model.parameters()), tmp_path / "run.nc"
    state, control = TrainerState(max_steps=4), TrainerControl()
    probe = StalenessProbe(out=out, seed=7, write_every=2)
    probe.on_train_begin(grpo_config(tmp_path, 0.5, 4), state, control, model=model)
    for t, log in enumerate([{"reward": 0.5, "loss": 0.0}, {"loss": 0.0}, {"reward": 0.25, "loss": 0.0}]):
        probe.on_step_begin(None, state, control)
        with torch.no_grad():
            weight.add_(float("nan") if t == 2 else 1.0)
        state.global_step += 1  # as Trainer does, before on_step_end
        probe.on_step_end(None, state, control)
        probe.on_log(None, state, control, logs=log)
        probe.on_log(None, state, control, logs={"eval_reward": 0.75})  # evaluated θ_{t+1}
        assert out.exists() == (t >= 1)
        if t == 1:  # written every 2 steps: what a crash now would leave
            assert open_store(out).sizes["step"] == 2
    assert control.should_training_stop and control.should_log
    probe.on_train_end(None, state, control)
    ds = open_store(out)
    s = {name: values.values.ravel() for name, values in ds.items()}
    assert len(s["reward"]) == 4 and s["nan_step"].item() == 3 and ds.seed.values.tolist() == [7]  # padded as llm/
    np.testing.assert_array_equal(s["reward"], [0.5, 0.5, 0.25, np.nan])
    np.testing.assert_array_equal(s["val_reward"], [np.nan, 0.75, 0.75, np.nan])
    np.testing.assert_allclose(s["update_norm"][:2], np.sqrt(weight.numel()) / 0.5, rtol=1e-6)
    np.testing.assert_allclose(s["grad_cos"][:2], [np.nan, 1.0], rtol=1e-6)


def test_guard_warns_when_drift_nears_R_and_suggests_eta_by_the_rule(tmp_path):
    """The guard driven by hand: +1 on every weight of one tensor per step, so ‖θ_t − θ_0‖ = t·√n."""
    model = tiny_model("small", tiny_tokenizer(), seed=0)
    weight, out, eta, steps = next(model.parameters()), tmp_path / "guarded.nc", 0.5, 4
    root_n = float(np.sqrt(weight.numel()))
    state, control = TrainerState(max_steps=steps), TrainerControl()
    guard = StalenessGuard(out=out, thresholds=Thresholds(drift=1.5 * root_n), stop_on_alarm=True)
    guard.on_train_begin(grpo_config(tmp_path, eta, steps), state, control, model=model)
    for t in range(steps):
        guard.on_step_begin(None, state, control)
        weight.grad = torch.full_like(weight, (-1.0) ** t)  # consecutive gradients point opposite ways
        guard.on_pre_optimizer_step(None, state, control)
        with torch.no_grad():
            weight.add_(1.0)
        state.global_step += 1
        guard.on_step_end(None, state, control)
        guard.on_log(None, state, control, logs={"reward": 0.5, "loss": 0.0})
        if control.should_training_stop:
            break
    # drift reaches 2√n ≥ 1.5√n at t = 2; U = √n/η, R = the drift threshold: c_hor = R/U = 1.5 η, η ≤ c_hor/T
    assert guard.alarm.step == 2 and set(guard.alarm.signals) == {"drift"} and state.global_step == 3
    assert guard.alarm.suggested_eta == pytest.approx(1.5 * eta / steps)
    guard.on_train_end(None, state, control)
    ds = open_store(out)
    assert json.loads(ds.attrs["config"])["alarm"]["step"] == 2
    np.testing.assert_allclose(ds.raw_grad_cos.values.ravel()[:3], [np.nan, -1.0, -1.0], rtol=1e-6)


def test_guard_needs_thresholds_or_radii(tmp_path):
    with pytest.raises(ValueError, match="thresholds .* or constants with r_clip"):
        StalenessGuard(out=tmp_path / "x.nc")
    guard = StalenessGuard(out=tmp_path / "x.nc", constants={"r_clip": 2.0, "R": 10.0}, fraction=0.5)
    assert (guard.thresholds.stale_drift, guard.thresholds.drift) == (1.0, 5.0)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps_per_generation": 3, "gradient_accumulation_steps": 2}, "do not divide one another"),
        ({"learning_rate": 0.0}, "learning_rate = 0.0"),
        ({"max_staleness": 4}, "not AsyncGRPOTrainer"),
        ({"fsdp": True}, "FSDP and ZeRO-3"),
        ({"global_step": 5}, "global_step = 5"),
    ],
)
def test_runs_it_cannot_measure_get_one_line_errors(tmp_path, change, message):
    args = grpo_config(tmp_path, 1e-3, 4)
    state = TrainerState(max_steps=4, global_step=change.pop("global_step", 0))
    for key, value in change.items():
        setattr(args, key, value)
    model = tiny_model("small", tiny_tokenizer(), seed=0)
    with pytest.raises(ValueError, match=message) as error:
        StalenessProbe(out=tmp_path / "x.nc").on_train_begin(args, state, TrainerControl(), model=model)
    assert len(str(error.value).splitlines()) == 1


@pytest.mark.parametrize("kwargs, message", [({"write_every": -1}, "write_every = -1"),
                                             ({"seed": "0"}, "seed = '0'")])
def test_bad_probe_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StalenessProbe(out="x.nc", **kwargs)
