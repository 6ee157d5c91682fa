"""Synthetic sweeps: the vmapped grid equals single runs, stores are reproducible, and resume loses nothing."""

import dataclasses

import jax
import numpy as np
import pytest
import xarray as xr

from synthetic import simulate, sweep
from synthetic.sweep import SweepConfig, run_sweep
from synthetic.tasks import Family, make_task
from theory.metrics import METRICS, PROJECTIONS, SWEEP_DIMS

TINY = SweepConfig(task="contextual", taus=(1, 3), etas=(0.5, 4.0), seeds=2, steps=20, exact_every=10, batch=8,
                   reuse="whole")
NEW = ("success", "staleness", "theta_proj", "probe_G", "probe_G_on", "probe_tv", "probe_gap", "probe_gap_beta",
       "bias_bound", "bias_bound_alt", "raw_grad_cos", "update_norm")


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "tiny.nc"
    return path, run_sweep(TINY, path, progress=False)


def test_store_has_the_schema(tiny_store):
    path, ds = tiny_store
    on_disk = xr.open_dataset(path)
    assert tuple(on_disk.reward.dims) == SWEEP_DIMS
    assert set(METRICS) | set(NEW) <= set(on_disk.data_vars)
    assert tuple(on_disk.theta_proj.dims) == (*SWEEP_DIMS, "proj") and on_disk.theta_proj.dtype == np.float32
    assert dict(on_disk.sizes) == {"tau": 2, "eta": 2, "seed": 2, "step": 20, "proj": PROJECTIONS}
    assert '"task": "contextual"' in on_disk.attrs["config"] and on_disk.attrs["package_version"]


def test_vmapped_grid_equals_runs_one_at_a_time(tiny_store):
    _, ds = tiny_store
    single = jax.jit(simulate.run, static_argnames="config")(make_task("contextual", seed=TINY.seed),
                                                           TINY.run_config(), 4.0, 3, 1)
    for name in ("reward", "drift", "grad_cos", "bias_norm", "success", "bias_bound_alt"):
        np.testing.assert_allclose(ds[name].sel(tau=3, eta=4.0, seed=1), single[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_same_seed_same_store(tiny_store, tmp_path):
    _, ds = tiny_store
    again = run_sweep(TINY, tmp_path / "again.nc", progress=False)
    xr.testing.assert_identical(ds.drop_attrs(), again.drop_attrs())


def test_no_retrace_across_grid_points(monkeypatch, tmp_path):
    traces = []

    def counting_run(*args):
        traces.append(args)
        return simulate.run(*args)

    monkeypatch.setattr(sweep, "run", counting_run)
    sweep.compiled_grid.cache_clear()
    config = dataclasses.replace(TINY, taus=(1, 2, 4), steps=10)
    run_sweep(config, tmp_path / "s.nc", progress=False)
    # another η grid, other seeds and another task instance of the same shapes: the same compiled function
    run_sweep(dataclasses.replace(config, etas=(0.25, 8.0), seeds=2, seed=5), tmp_path / "t.nc", progress=False)
    assert len(traces) == 1, f"the grid retraced {len(traces)} times"
    sweep.compiled_grid.cache_clear()


def test_interrupted_sweep_resumes_without_recomputing(counted, tmp_path):
    config = dataclasses.replace(TINY, taus=(1, 2, 3))
    path = tmp_path / "s.nc"
    full = run_sweep(config, path, progress=False)
    path.unlink()  # interrupted before the combine: two parts done, one lost
    lost = next(p for p in (tmp_path / "s.nc.parts").glob("tau=3*.nc"))
    lost.unlink()
    counted.clear()
    resumed = run_sweep(config, path, progress=False)
    assert counted == [3]
    xr.testing.assert_identical(full.drop_attrs(), resumed.drop_attrs())


def test_a_damaged_part_is_recomputed(tmp_path):
    config = dataclasses.replace(TINY, taus=(1,))
    path = tmp_path / "s.nc"
    full = run_sweep(config, path, progress=False)
    path.unlink()
    part = next((tmp_path / "s.nc.parts").glob("tau=1*.nc"))
    part.write_bytes(part.read_bytes()[:100])
    xr.testing.assert_identical(full.drop_attrs(), run_sweep(config, path, progress=False).drop_attrs())


def test_another_config_is_not_mixed_into_a_store(tmp_path):
    path = tmp_path / "s.nc"
    run_sweep(dataclasses.replace(TINY, taus=(1,)), path, progress=False)
    path.unlink()
    with pytest.raises(ValueError, match="another config"):
        run_sweep(dataclasses.replace(TINY, taus=(1,), eps=0.3), path, progress=False)


def test_a_store_of_another_engine_revision_is_neither_reused_nor_resumed(tiny_store, tmp_path):
    from results.plan import store_path

    path, _ = tiny_store
    older = dataclasses.replace(TINY)
    object.__setattr__(older, "engine_revision", TINY.engine_revision - 1)  # as the previous engine recorded it
    assert store_path(tmp_path, "s", older, False) != store_path(tmp_path, "s", TINY, False)
    with pytest.raises(ValueError, match="another config"):
        run_sweep(older, path, progress=False)  # its finished store is not returned, its parts are not mixed in


def test_presets_span_the_grid_the_statistics_need():
    full = SweepConfig.preset("graded")
    assert full.seeds >= 32 and len(full.taus) >= 4 and len(full.etas) >= 8
    assert full.reuse == "slices" and full.update_clip is not None
    refined = SweepConfig.preset("graded", etas=(1.0, 2.0))
    assert refined.etas == (1.0, 2.0) and refined.seeds == full.seeds
    quick = SweepConfig.preset("graded", quick=True)
    assert quick.seeds * len(quick.taus) * len(quick.etas) * quick.steps <= 5000
    for task in ("autoregressive", "bandit", "contextual"):
        assert SweepConfig.preset(task).reuse == "whole", "the controls keep their earlier pipeline"


@pytest.mark.parametrize("bad", [dict(taus=(0,)), dict(etas=(float("nan"),)), dict(seeds=0), dict(task="maze"),
                                 dict(learner_dtype="float16"), dict(family=dict(p_wrong=0.5, p_right=0.5)),
                                 dict(family=dict(accept_max=0)), dict(family=dict(initial_truncation=1.0))])
def test_bad_sweep_config_is_refused(bad):
    with pytest.raises(ValueError):
        SweepConfig(**{k: Family(**v) if k == "family" else v for k, v in bad.items()})


def test_an_unreachable_initial_state_is_refused():
    with pytest.raises(ValueError, match="initial_success"):
        make_task("graded", family=Family(accept_max=1))


@pytest.mark.parametrize("args, needle", [
    (["--eta", "1,nan"], "--eta"), (["--eta", "-1"], "--eta"), (["--tau", "0"], "--tau"),
    (["--task", "maze"], "--task"), (["--group", "1"], "group = 1"), (["--eps", "0"], "eps = 0"),
    (["--dual-clip", "1.1"], "dual_clip = 1.1"), (["--steps", "15", "--exact-every", "10"], "steps = 15"),
    (["--update-clip", "-1"], "update_clip = -1"), (["--family", "p_wrong=2"], "p_wrong = 2"),
    (["--family", "colour=1"], "colour"), (["--family", "accept_max=x"], "accept_max"),
    (["--kl", "nan"], "kappa = nan"), (["--beta1", "1"], "beta1 = 1"),
])
def test_bad_cli_input_is_one_line(repro, tmp_path, args, needle):
    code, out, err = repro("sweep", "synthetic", "--out", tmp_path / "x.nc", "--quick", *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("Error:") and needle in err, err


def test_cli_writes_a_store(repro, tmp_path):
    # TINY's task and run config: the compiled grid function is reused, only the grid differs.
    code, out, err = repro("sweep", "synthetic", "--task", "contextual", "--tau", "1,2", "--eta", "1", "--seeds", "2",
                           "--batch", "8", "--steps", "20", "--exact-every", "10", "--out", tmp_path / "b.nc",
                           "--no-progress")
    assert code == 0, err
    assert xr.open_dataset(tmp_path / "b.nc").sizes["tau"] == 2
