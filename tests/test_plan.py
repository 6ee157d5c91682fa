"""The experiment plan of `repro figures` (results/plan.py): store names, seeds, the refined η grid, the ESS twin."""

import re

import numpy as np
import pytest

from analysis.planted import planted_world
from results import plan
from results.store import write_atomic
from theory.metrics import SCHEMA_VERSION


def test_store_names_carry_mode_schema_and_config(tmp_path):
    config = plan.preset("synthetic", "bandit", quick=True)
    path = plan.store_path(tmp_path, "synthetic-bandit", config, quick=True)
    assert re.fullmatch(rf"synthetic-bandit-quick-s{SCHEMA_VERSION}-[0-9a-f]{{8}}\.nc", path.name)
    assert plan.store_path(tmp_path, "synthetic-bandit", plan.with_grid(config, seeds=3), quick=True) != path
    assert plan.store_path(tmp_path, "synthetic-bandit", config, quick=False).name.startswith("synthetic-bandit-full")


def test_a_new_schema_version_renames_every_store(tmp_path, monkeypatch):
    config = plan.preset("synthetic", "bandit", quick=True)
    before = plan.store_path(tmp_path, "x", config, quick=True)
    monkeypatch.setattr(plan, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    assert plan.store_path(tmp_path, "x", config, quick=True) != before


def test_default_sweeps_have_enough_seeds():
    full = plan.KNOBS["full"]
    assert full["synthetic"]["seeds"] >= 32 and full["llm"]["seeds"] >= 8
    for name, (engine, which) in plan.SUBSTRATES.items():
        config = plan.with_grid(plan.preset(engine, which, quick=False), seeds=full[engine]["seeds"])
        seeds = config.seeds if isinstance(config.seeds, int) else len(config.seeds)
        assert seeds == full[engine]["seeds"], name


def test_refined_grid_spans_the_transition():
    etas = 2.0 ** np.arange(8)
    collapsed = np.zeros((2, 8, 4), dtype=bool)
    collapsed[0, 5:] = True                 # τ = 1: clean up to 16, all collapse from 32
    collapsed[1, 3:] = True                 # τ = 2: clean up to 4, all collapse from 8
    collapsed[1, 2, 0] = True               # … and one seed of four at 4
    refined = plan.refine_etas(collapsed, etas, 5)  # from a decade below the clean edge 2 (not below 1) to 32
    assert refined[0] == pytest.approx(1.0) and refined[-1] == pytest.approx(32.0) and len(refined) == 5
    assert np.allclose(np.diff(np.log(refined)), np.log(32) / 4, rtol=1e-5)
    wide = np.zeros((1, 12, 4), dtype=bool)
    wide[0, 9:] = True  # clean up to 256, every seed collapses from 512; the coarse grid reaches down to 1
    refined = plan.refine_etas(wide, 2.0 ** np.arange(12), 5)
    assert refined[0] == pytest.approx(25.6) and refined[-1] == pytest.approx(512.0)


@pytest.mark.parametrize("fill", [False, True])
def test_nothing_to_refine_keeps_the_coarse_grid_spread_over_count(fill):
    etas = (0.1, 0.2, 0.4, 0.8, 1.6)
    assert plan.refine_etas(np.full((2, 5, 2), fill), etas, 5) == etas
    assert plan.refine_etas(np.full((2, 5, 2), fill), etas, 3) == (0.1, 0.4, 1.6)


@pytest.mark.parametrize("engine, which", [("synthetic", "autoregressive"), ("llm", "small")])
def test_grid_changes_and_the_ess_twin(engine, which):
    config = plan.preset(engine, which, quick=True)
    changed = plan.with_grid(config, etas=(1.0, 2.0), seeds=3)
    assert changed.etas == (1.0, 2.0) and (changed.seeds == 3 or changed.seeds == (0, 1, 2))
    twin = plan.ess_twin(changed, 2.0, 1.0)
    assert twin.etas == (2.0,)
    knobs = twin.grpo if engine == "llm" else twin
    assert knobs.ess_base == 1.0


def _fake_runner(calls):
    def run(config, out, progress=True, **pool):
        calls.append((config.etas, config.seeds))
        if not out.exists():
            seeds = config.seeds if isinstance(config.seeds, int) else len(config.seeds)
            ds, _ = planted_world("clean", 0, taus=config.taus, etas=config.etas, seeds=seeds, steps=100,
                                  c_loc=2.0 * min(config.etas) * max(config.taus) if len(config.etas) > 1 else 1e9)
            write_atomic(ds, out)
    return run


def test_run_plan_coarse_then_refined_then_twin_and_reuse(tmp_path, monkeypatch):
    import llm.sweep
    import synthetic.sweep

    calls = []
    monkeypatch.setattr(plan, "SUBSTRATES", {"synthetic-bandit": ("synthetic", "bandit")})
    monkeypatch.setitem(plan.KNOBS["quick"], "synthetic", {"coarse_seeds": 2, "seeds": 3, "etas": 4})
    monkeypatch.setattr(synthetic.sweep, "run_sweep", _fake_runner(calls))
    monkeypatch.setattr(llm.sweep, "run_sweep", _fake_runner([]))
    stores, twins, log = plan.run_plan(True, tmp_path, progress=False)
    assert list(stores) == list(twins) == ["synthetic-bandit"]
    assert [line.split(":")[0] for line in log] == ["synthetic-bandit-coarse", "synthetic-bandit",
                                                    "synthetic-bandit-ess"]
    assert all(": computed " in line for line in log)
    assert [seeds for _, seeds in calls] == [2, 3, 3]
    assert len(calls[-1][0]) == 1, "the twin runs at η₀ only"
    again = plan.run_plan(True, tmp_path, progress=False)[2]
    assert all(": reused " in line for line in again)
