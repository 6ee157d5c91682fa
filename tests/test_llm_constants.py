"""§7 constants of the tiny Llama: every estimate finite, with samples and uncertainty; CLI dispatch by --model."""

import dataclasses
import json
import math

import pytest
import torch

from llm.config import GRPOConfig, WarmstartConfig
from llm.constants import ConstantsConfig, estimate_constants


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    torch.set_num_threads(1)
    cache = str(tmp_path_factory.mktemp("warm"))
    return dataclasses.replace(ConstantsConfig.preset("tiny"), warmstart=WarmstartConfig(steps=60, cache_dir=cache),
                               grpo=GRPOConfig(prompts=4, group=4, val_every=100), directions=1, steps=3)


def test_every_constant_has_a_value_an_uncertainty_and_a_sample_count(small):
    report = estimate_constants(small)
    for name, samples in (("G", 4), ("L_D", 16), ("L_beta", 4), ("U", 3), ("r_clip", 16)):
        assert report[name]["samples"] == samples, name
        assert math.isfinite(report[name]["value"]) and report[name]["value"] > 0, name
        assert report[name]["uncertainty"] >= 0, name
    assert report["G"]["q50"] <= report["G"]["q90"] <= report["G"]["value"]
    # moving along the surrogate gradient changes the policy far faster than a random direction
    by = report["L_D"]["by_direction"]
    assert by["surrogate_gradient"] > 10 * by["random_0"]
    assert report["C_b"] == pytest.approx(2 * report["G"]["value"] * report["L_D"]["value"]
                                          + report["L_beta"]["value"])


def test_same_seed_gives_the_same_constants(small):
    first, second = estimate_constants(small), estimate_constants(small)
    for name in ("G", "L_D", "L_beta", "r_clip"):
        assert first[name]["value"] == second[name]["value"], name


@pytest.mark.parametrize("field, value", [("radius", 0.0), ("radius", float("nan")), ("directions", -1),
                                          ("clip_threshold", 1.5)])
def test_bad_config_is_one_line(small, field, value):
    with pytest.raises(ValueError, match=field):
        estimate_constants(dataclasses.replace(small, **{field: value}))


def test_cli_dispatches_on_model(repro, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = repro("constants", "--model", "tiny", "--task", "arithmetic", "--json")
    assert code == 0, err
    assert set(json.loads(out)) >= {"G", "U", "L_D", "L_beta", "r_clip", "C_b", "region"}
    for args, named in ((["--model", "no-such-model", "--task", "arithmetic"], "no-such-model"),
                        (["--model", "tiny", "--task", "bandit"], "--task")):
        code, _, err = repro("constants", *args)
        assert code == 2 and err.startswith("Error:") and len(err.strip().splitlines()) == 1 and named in err
