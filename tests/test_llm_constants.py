"""§7 constants of the tiny Llama, local to a run: every estimate finite, with samples and uncertainty; CLI."""

import dataclasses
import json
import math

import pytest
import torch

from llm.config import WarmstartConfig
from llm.constants import ConstantsConfig, estimate_constants

NAMES = ("region", "G", "G_on", "L_D", "L_beta", "U", "r_clip")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.set_num_threads(1)
    cache = str(tmp_path_factory.mktemp("warm"))
    run = ConstantsConfig.preset("tiny").run
    return ConstantsConfig(dataclasses.replace(run, steps=6, warmstart=WarmstartConfig(steps=60, cache_dir=cache),
                                               grpo=dataclasses.replace(run.grpo, prompts=6, probe_prompts=8)))


@pytest.fixture(scope="module")
def report(small):
    return estimate_constants(small)


def test_every_constant_has_a_value_an_uncertainty_and_a_sample_count(report):
    assert report["run"]["probes"] == 3  # steps 1, 3, 5: the last step of each τ = 2 cycle
    for name, samples in (("G", 24), ("G_on", 24), ("L_D", 24), ("L_beta", 24), ("U", 6), ("region", 3),
                          ("r_clip", 3)):
        assert report[name]["samples"] == samples, name
        assert math.isfinite(report[name]["value"]) and report[name]["value"] > 0, name
        assert report[name]["uncertainty"] >= 0, name
    assert report["C_b"] == pytest.approx(2 * report["G"]["value"] * report["L_D"]["value"]
                                          + report["L_beta"]["value"])


def test_same_seed_gives_the_same_constants(small, report):
    again = estimate_constants(small)
    for name in NAMES:
        assert again[name]["value"] == report[name]["value"], name


@pytest.mark.parametrize("change, message", [({"bias_every": 0}, "probes"), ({"probe_prompts": 2}, "probe batch")])
def test_bad_config_is_one_line(small, change, message):
    with pytest.raises(ValueError, match=message):
        ConstantsConfig(dataclasses.replace(small.run, grpo=dataclasses.replace(small.run.grpo, **change)))


def test_cli_dispatches_on_model(repro, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = repro("constants", "--model", "tiny", "--task", "arithmetic", "--json")
    assert code == 0, err
    assert set(json.loads(out)) >= {*NAMES, "C_b", "run", "seconds"}
    assert "learner steps" in err  # the run shows its progress
    empty = tmp_path / "empty-model"
    empty.mkdir()
    for args, named in ((["--model", "no-such-model", "--task", "arithmetic"], "no-such-model"),
                        (["--model", empty, "--task", "arithmetic"], "config.json"),
                        (["--model", "tiny", "--task", "bandit"], "--task")):
        code, _, err = repro("constants", *args)
        assert code == 2 and err.startswith("Error:") and len(err.strip().splitlines()) == 1 and named in err


@pytest.mark.slow
def test_smollm2_preset_measures_every_constant_to_better_than_half():
    """``repro constants --model smollm2``'s preset (about 3 minutes on two CPU cores): every constant finite,
    its uncertainty below half its value."""
    report = estimate_constants(ConstantsConfig.preset("smollm2"))
    for name in NAMES:
        assert 0 < report[name]["value"] < math.inf and report[name]["uncertainty"] < report[name]["value"] / 2, name
