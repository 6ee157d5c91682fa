"""Figures and REPORT.md (figures/): every promised file, legends inside the canvas, predictions drawn against
their data, and `repro figures` wiring (its --quick run end to end included)."""

import numpy as np
import pytest

from analysis import analyze
from analysis.advisor import ADVISOR
from analysis.planted import planted_world
from analysis.sweep import ADVISORS, ROWS
from figures import plots
from figures.report import FIGURES, NAMES, render_all, report_markdown
from results.store import StoreError, write_atomic

SUBSTRATES = ("synthetic-toy", "llm-toy")
GRID = {"taus": (1, 4), "etas": (0.1, 0.2, 0.4, 0.8), "seeds": 4, "steps": 160}


def with_probes(ds, squared=False):
    """Add bias probes at every step with lag > 0: ‖b‖ = 0.5 τ_t η, a Lemma 1 bound 1e80× too large (vacuous)."""
    lag = ds.staleness.values.astype(float)
    x = lag * ds.eta.values[None, :, None, None]
    bias = np.where(lag > 0, 0.5 * x, np.nan)
    ds = ds.assign(stale_drift=(ds.reward.dims, x), raw_grad_cos=(ds.reward.dims, np.full(x.shape, 0.2)),
                   grad_cos=(ds.reward.dims, np.full(x.shape, 0.9)))
    if squared:
        noise = 0.01 * np.random.default_rng(0).standard_normal(x.shape)
        sq = bias ** 2 + noise
        return ds.drop_vars("success").assign(bias_sq=(ds.reward.dims, sq), bias_sq_lo=(ds.reward.dims, sq - 0.02),
                                              bias_sq_hi=(ds.reward.dims, sq + 0.02))
    return ds.assign(bias_norm=(ds.reward.dims, bias), bias_bound=(ds.reward.dims, 1e80 * bias),
                     bias_bound_alt=(ds.reward.dims, 2 * bias))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    paths = {}
    for i, name in enumerate(SUBSTRATES):
        ds, _ = planted_world("clean", i, c_loc=1.6, **GRID)
        paths[name] = root / f"{name}.nc"
        write_atomic(with_probes(ds, squared=name.startswith("llm")), paths[name])
    return root, paths


@pytest.fixture(scope="module")
def rendered(stores):
    root, paths = stores
    out = root / "out"
    return out, render_all(paths, out, n_boot=10, progress=False, coverage={"worlds": 1, "kinds": ("clean",)})


def test_every_promised_file_is_written_and_valid(rendered):
    out, written = rendered
    expected = {out / "REPORT.md"} | {out / f"{s}_table2.md" for s in SUBSTRATES}
    expected |= {out / f"{s}_{kind}.{ext}" for s in SUBSTRATES for kind in FIGURES for ext in ("png", "pdf")}
    assert set(written) == expected
    for path in expected:
        data = path.read_bytes()
        assert data.startswith({".png": b"\x89PNG", ".pdf": b"%PDF", ".md": b"#"}[path.suffix]), path


def test_report_states_definitions_verdicts_census_advisor_and_coverage(rendered):
    out, _ = rendered
    report = (out / "REPORT.md").read_text()
    for heading in ("## Definitions", "## Verdicts", "## Boundary and census", "## Theorem 1",
                    "## Advisor on held-out τ", "## Learning-rate policies", "## Coverage"):
        assert heading in report, heading
    rows = [line for line in report.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == len(ROWS) * len(SUBSTRATES)
    assert all(any(v in row for v in ("holds", "fails", "inconclusive")) for row in rows)
    assert "profile likelihood" in report and "seeds needed" in report and "absorption" in report
    coverage = report.split("## Coverage")[1]
    assert "### synthetic-toy" in coverage and "Coverage of 95% intervals" in coverage
    # the stores log no val_reward: the policies' final quality is the training reward, and says so
    assert "training reward (no val_reward in store)" in report and "val_reward per τ" not in report
    # two τ: nothing to fit on the other τ, and the advisor section says so
    assert f"Advisor: {ADVISOR.name}" in report and "no held-out fit: needs runs at two τ" in report


def test_report_compares_the_advisors_on_held_out_tau():
    ds, _ = planted_world("horizon", 3, taus=(1, 4, 16), seeds=8, steps=200)
    an = analyze(ds, n_boot=10)
    section = "\n".join(report_markdown({"toy": an}, {}).split("## Advisor on held-out τ")[1:])
    rows = [line for line in section.splitlines() if line.startswith("| toy |")]
    assert len(rows) == 3 + 1 + len(ADVISORS)  # per τ, the summary, one line per candidate
    assert all(a.name in section for a in ADVISORS) and "goal" in section


@pytest.fixture(scope="module")
def analysed(stores):
    from analysis.store import load_sweep

    _, paths = stores
    return {name: (load_sweep(p), analyze(load_sweep(p), n_boot=10)) for name, p in paths.items()}


@pytest.mark.parametrize("kind", [k for k in plots.FIGURES if k != "table2"])
def test_legends_and_notes_sit_inside_the_canvas(analysed, kind):
    for name, (ds, an) in analysed.items():
        if name != "synthetic-toy" and kind != "bias":
            continue
        fig = plots.FIGURES[kind](ds, an, name)
        fig.canvas.draw()
        canvas = fig.bbox
        for ax in fig.axes:
            legend = ax.get_legend()
            for artist in ([legend] if legend else []) + list(ax.texts):
                box = artist.get_window_extent()
                assert canvas.x0 - 1 <= box.x0 and box.x1 <= canvas.x1 + 1, (kind, name)
                assert canvas.y0 - 1 <= box.y0 and box.y1 <= canvas.y1 + 1, (kind, name)
        plots.plt.close(fig)


def test_a_vacuous_bound_line_never_flattens_the_bias_axes(analysed):
    ds, an = analysed["synthetic-toy"]
    fig = plots.bias(ds, an, "toy")
    ax = fig.axes[0]
    bottom, top = ax.get_ylim()
    assert top < 1e3, "the axes follow the data, not a 1e80 bound"
    for line in ax.get_lines():
        y = np.asarray(line.get_ydata(), dtype=float)
        assert not (y[np.isfinite(y)] > 10 * top).any(), line.get_label()
    assert any("Lemma 1" in t.get_text() or "Lemma 1" in line.get_label()
               for t in ax.texts for line in ax.get_lines())
    plots.plt.close(fig)


def test_bias_figure_uses_the_measured_lag_and_squared_estimates_on_llm(analysed):
    _, an = analysed["llm-toy"]
    assert "lo" in an.theorem1.points and an.theorem1.slope_source.startswith("bias_sq")
    _, an = analysed["synthetic-toy"]
    assert an.theorem1.slope.value == pytest.approx(1.0, abs=1e-6)


def test_phase_diagram_draws_the_two_branch_fit_and_its_intervals(analysed):
    ds, an = analysed["synthetic-toy"]
    fig = plots.phase_diagram(ds, an, "toy")
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any(label.startswith("two-branch fit") for label in labels)
    assert any("single power law" in label for label in labels)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert set(an.binding().values()) <= set(texts)
    plots.plt.close(fig)


def test_only_redraws_one_kind(stores, tmp_path):
    _, paths = stores
    one = {"synthetic-toy": paths["synthetic-toy"]}
    written = render_all(one, tmp_path, only="phase", n_boot=10, progress=False)
    assert sorted(p.name for p in written) == ["synthetic-toy_phase.pdf", "synthetic-toy_phase.png"]
    assert render_all(one, tmp_path, only="report", n_boot=10, progress=False) == [tmp_path / "REPORT.md"]


def test_bad_inputs(stores, tmp_path):
    _, paths = stores
    with pytest.raises(ValueError, match="not one of"):
        render_all(paths, tmp_path, only="nope")
    with pytest.raises(ValueError, match="no results stores"):
        render_all({}, tmp_path)
    bad = tmp_path / "bad.nc"
    bad.write_text("not a store")
    with pytest.raises(StoreError):
        render_all({"bad": bad}, tmp_path)
    assert "report" in NAMES and "survival" in NAMES and "staleness" in NAMES


def test_repro_figures_wires_the_plan_to_render_all(repro, stores, tmp_path, monkeypatch):
    from results import plan

    _, paths = stores
    asked = []

    def run_plan(quick, runs, progress, workers):
        asked.append((quick, workers))
        return {"toy": paths["synthetic-toy"]}, {"toy": paths["synthetic-toy"]}, ["toy: reused"]

    monkeypatch.setattr(plan, "run_plan", run_plan)
    code, out, err = repro("figures", "--quick", "--only", "report", "--out", tmp_path, "--workers", "3")
    assert code == 0, err
    assert "toy: reused" in err and "wrote 1 files" in out and "| toy |" in (tmp_path / "REPORT.md").read_text()
    assert asked == [(True, 3)]
    code, _, err = repro("figures", "--only", "nope", "--out", tmp_path)
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1
    code, _, err = repro("figures", "--workers", "0", "--out", tmp_path)
    assert code == 2 and "--workers" in err and len(err.strip().splitlines()) == 1


def test_repro_figures_draws_given_stores_without_running_sweeps(repro, stores, tmp_path, monkeypatch):
    from results import plan

    _, paths = stores
    monkeypatch.setattr(plan, "run_plan", lambda *a: pytest.fail("no sweep may run with --store"))
    code, out, err = repro("figures", "--store", paths["llm-toy"], "--quick", "--only", "report", "--out", tmp_path)
    assert code == 0, err
    assert "| llm-toy |" in (tmp_path / "REPORT.md").read_text() and "wrote 1 files" in out
    code, _, err = repro("figures", "--store", paths["llm-toy"], "--store", paths["llm-toy"], "--out", tmp_path)
    assert code == 2 and "file stem" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_repro_figures_quick_runs_a_substrate_end_to_end_then_reuses_it(repro, tmp_path, monkeypatch):
    """The real synthetic engine through plan, analysis and figures in ~45 s (every engine: the test below, 10 min;
    the default tier checks the same wiring with fake sweeps, test_plan.py and the tests above)."""
    from results import plan

    monkeypatch.setattr(plan, "SUBSTRATES", {"synthetic-bandit": plan.SUBSTRATES["synthetic-bandit"]})
    _quick_run_then_reuse(repro, tmp_path)


@pytest.mark.slow
def test_repro_figures_quick_runs_every_sweep_then_reuses_them(repro, tmp_path):
    _quick_run_then_reuse(repro, tmp_path)


def _quick_run_then_reuse(repro, tmp_path):
    from results import plan

    runs, out = tmp_path / "runs", tmp_path / "out"
    code, stdout, err = repro("figures", "--quick", "--runs", runs, "--out", out, "--no-progress")
    assert code == 0, err
    expected = {out / "REPORT.md"} | {out / f"{s}_table2.md" for s in plan.SUBSTRATES}
    expected |= {out / f"{s}_{kind}.{ext}" for s in plan.SUBSTRATES for kind in FIGURES for ext in ("png", "pdf")}
    assert set(out.iterdir()) == expected and f"wrote {len(expected)} files" in stdout
    assert err.count(": computed ") >= 2 * len(plan.SUBSTRATES)  # every coarse store and ESS twin, refined ones
    assert all(f"| {s} |" in (out / "REPORT.md").read_text() for s in plan.SUBSTRATES)
    code, _, err = repro("figures", "--quick", "--runs", runs, "--out", out, "--no-progress", "--only", "report")
    assert code == 0 and ": computed " not in err and err.count(": reused ") >= 2 * len(plan.SUBSTRATES), err
