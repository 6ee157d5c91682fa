"""Synthetic sweeps: the vmapped grid equals single runs, stores are reproducible, and resume loses nothing."""

import dataclasses

import jax
import numpy as np
import pytest
import xarray as xr

from synthetic import simulate, sweep
from synthetic.sweep import SweepConfig, run_sweep
from synthetic.tasks import make_task
from theory.metrics import METRICS, SWEEP_DIMS

TINY = SweepConfig(task="contextual", taus=(1, 3), etas=(0.5, 4.0), seeds=2, steps=20, exact_every=10, batch=8)


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "tiny.nc"
    return path, run_sweep(TINY, path, progress=False)


def test_store_has_the_schema(tiny_store):
    path, ds = tiny_store
    on_disk = xr.open_dataset(path)
    assert tuple(on_disk.reward.dims) == SWEEP_DIMS
    assert set(METRICS) <= set(on_disk.data_vars)
    assert dict(on_disk.sizes) == {"tau": 2, "eta": 2, "seed": 2, "step": 20}
    assert '"task": "contextual"' in on_disk.attrs["config"] and on_disk.attrs["package_version"]


def test_vmapped_grid_equals_runs_one_at_a_time(tiny_store):
    _, ds = tiny_store
    run = jax.jit(simulate.make_run(make_task("contextual", seed=TINY.seed), TINY.run_config()))
    single = run(4.0, 3, 1)
    for name in ("reward", "drift", "grad_cos", "bias_norm"):
        np.testing.assert_allclose(ds[name].sel(tau=3, eta=4.0, seed=1), single[name], rtol=1e-10, atol=1e-12,
                                   err_msg=name)


def test_same_seed_same_store(tiny_store, tmp_path):
    _, ds = tiny_store
    again = run_sweep(TINY, tmp_path / "again.nc", progress=False)
    xr.testing.assert_identical(ds.drop_attrs(), again.drop_attrs())


def test_one_compilation_serves_the_grid(monkeypatch, tmp_path):
    traces = []
    make_run = simulate.make_run

    def counting_make_run(task, config):
        run = make_run(task, config)

        def traced(*args):
            traces.append(args)
            return run(*args)

        return traced

    monkeypatch.setattr(sweep, "make_run", counting_make_run)
    run_sweep(dataclasses.replace(TINY, taus=(1, 2, 4), steps=10), tmp_path / "s.nc", progress=False)
    assert len(traces) == 1, f"the grid retraced {len(traces)} times"


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


@pytest.mark.parametrize("args, needle", [
    (["--eta", "1,nan"], "--eta"), (["--eta", "-1"], "--eta"), (["--tau", "0"], "--tau"),
    (["--task", "maze"], "--task"), (["--group", "1"], "--group"), (["--eps", "0"], "--eps"),
    (["--dual-clip", "1.1"], "--dual-clip"), (["--steps", "15", "--exact-every", "10"], "steps = 15"),
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
