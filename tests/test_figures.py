"""render_all on planted stores: every promised file exists and is a valid PNG / PDF / markdown."""

import pytest

from figures.report import FIGURES, NAMES, render_all
from results.store import StoreError
from planted import planted_store

SUBSTRATES = ("bandit", "llm-small")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    stores = {name: planted_store(root / f"{name}.nc", taus=(1, 2, 4), etas=(0.8, 0.4, 0.2, 0.1, 0.05), seeds=3,
                                  steps=300, seed=i) for i, name in enumerate(SUBSTRATES)}
    written = render_all(stores, root / "out", n_boot=20)
    return root / "out", written, stores


def test_every_promised_file_is_written_and_valid(rendered):
    out, written, _ = rendered
    expected = {out / "REPORT.md"} | {out / f"{s}_table2.md" for s in SUBSTRATES}
    expected |= {out / f"{s}_{kind}.{ext}" for s in SUBSTRATES for kind in FIGURES for ext in ("png", "pdf")}
    assert set(written) == expected
    for path in expected:
        data = path.read_bytes()
        assert data, path
        if path.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n"), path
        elif path.suffix == ".pdf":
            assert data.startswith(b"%PDF"), path


def test_report_has_a_verdict_row_per_prediction_and_substrate(rendered):
    out, _, _ = rendered
    report = (out / "REPORT.md").read_text()
    assert "**Rule.**" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == 7 * len(SUBSTRATES)
    assert all(any(v in row for v in ("holds", "fails", "inconclusive")) for row in rows)
    table = (out / "bandit_table2.md").read_text()
    assert "k*" in table and "η·t*" in table


def test_only_redraws_one_kind(rendered, tmp_path):
    _, _, stores = rendered
    written = render_all({"bandit": stores["bandit"]}, tmp_path, only="phase", n_boot=10)
    assert sorted(p.name for p in written) == ["bandit_phase.pdf", "bandit_phase.png"]
    assert render_all({"bandit": stores["bandit"]}, tmp_path, only="report", n_boot=10) == [tmp_path / "REPORT.md"]


def test_bad_inputs(rendered, tmp_path):
    _, _, stores = rendered
    with pytest.raises(ValueError, match="not one of"):
        render_all(stores, tmp_path, only="nope")
    with pytest.raises(ValueError, match="no results stores"):
        render_all({}, tmp_path)
    bad = tmp_path / "bad.nc"
    bad.write_text("not a store")
    with pytest.raises(StoreError):
        render_all({"bad": bad}, tmp_path)
    assert "report" in NAMES


def test_baseline_policies_on_the_planted_grid(rendered):
    from figures.analysis import analyze, load_sweep
    from figures.baselines import policy_outcomes

    _, _, stores = rendered
    ds = load_sweep(stores["bandit"])
    outcomes = policy_outcomes(ds, analyze(ds, n_boot=10))
    # planted: a cell collapses iff η·τ > 0.4 (within 300 steps for η ≥ 0.2), so η_max(τ=1) = 0.4
    assert [r["eta"] for r in outcomes["fixed η"]] == [0.4, 0.4, 0.4]
    assert [r["collapse_rate"] for r in outcomes["fixed η"]] == [0.0, 1.0, 1.0]
    assert [r["eta"] for r in outcomes["η/τ"]] == [0.4, 0.2, 0.1]
    assert [r["collapse_rate"] for r in outcomes["η/τ"]] == [0.0, 0.0, 0.0]
    advisor = outcomes["advisor"]
    assert all(r["eta"] <= r["eta_asked"] for r in advisor) and all(r["collapse_rate"] == 0 for r in advisor)


def test_ess_scaled_policy_reads_its_own_store_at_the_reference_eta(rendered, tmp_path):
    from figures.analysis import analyze, load_sweep
    from figures.baselines import policy_outcomes, store_reference_eta

    _, _, stores = rendered
    ds = load_sweep(stores["bandit"])
    assert store_reference_eta(ds) == 0.4
    # an "ESS" store at η₀ only, planted so that it collapses from τ = 4 on (η·τ > 0.9 there)
    ess = load_sweep(planted_store(tmp_path / "ess.nc", taus=(1, 2, 4), etas=(0.4,), seeds=3, steps=300, seed=7,
                                   c_loc=0.9))
    rows = policy_outcomes(ds, analyze(ds, n_boot=10), ess)["ESS-scaled"]
    assert [r["eta"] for r in rows] == [0.4, 0.4, 0.4]
    assert [r["collapse_rate"] for r in rows] == [0.0, 0.0, 1.0]


def test_advisor_on_held_out_cells_never_collapses_on_the_planted_grid():
    from figures.analysis import analyze
    from figures.baselines import advisor_check
    from planted import planted_dataset

    rows = advisor_check(analyze(planted_dataset(seeds=4, steps=600), n_boot=10))
    # planted: collapse iff η·τ > 0.4 (t* = 40/η ≤ 600), so every other τ gives c_loc = 0.4, c_hor = 40; the advice
    # min(0.4/τ, 40/600) snaps to 0.05; 4× it to 0.2, and 0.2·τ > 0.4 from τ = 4 on
    assert [r["tau"] for r in rows] == [1, 2, 4, 8]
    assert [r["p_collapse"] for r in rows] == [0.0, 0.0, 0.0, 0.0]
    assert [r["p_collapse_4x"] for r in rows] == [0.0, 0.0, 1.0, 1.0]
    assert all(r["eta"] <= r["eta_advised"] for r in rows)


def test_advisor_check_skips_a_tau_whose_neighbours_give_no_constants():
    from figures.analysis import analyze
    from figures.baselines import advisor_check
    from planted import planted_dataset

    # only τ = 8 has a boundary inside the grid (c_loc = 3.2 puts η_max(τ ≤ 4) at the top η): leaving τ = 8 out
    # leaves no c_loc, so that τ gets no row, and the others are advised from τ = 8 alone
    rows = advisor_check(analyze(planted_dataset(seeds=2, steps=600, c_loc=3.2), n_boot=10))
    assert [r["tau"] for r in rows] == [1, 2, 4]
def test_repro_figures_wires_stores_to_render_all(repro, rendered, tmp_path, monkeypatch):
    import paper_repro

    _, _, stores = rendered
    asked = []

    def sweep_stores(quick, runs, progress, workers):
        asked.append(workers)
        return {"bandit": stores["bandit"]}, {"bandit": stores["llm-small"]}, ["bandit: reused"]

    monkeypatch.setattr(paper_repro, "_sweep_stores", sweep_stores)
    code, out, err = repro("figures", "--quick", "--only", "report", "--out", tmp_path, "--workers", "3")
    assert code == 0, err
    assert "bandit: reused" in err and "wrote 1 files" in out and (tmp_path / "REPORT.md").stat().st_size > 0
    assert asked == [3]
    code, _, err = repro("figures", "--only", "nope", "--out", tmp_path)
    assert code == 2 and "nope" in err and len(err.strip().splitlines()) == 1
    code, _, err = repro("figures", "--workers", "0", "--out", tmp_path)
    assert code == 2 and "--workers" in err and len(err.strip().splitlines()) == 1


def test_repro_figures_draws_given_stores_without_running_sweeps(repro, rendered, tmp_path, monkeypatch):
    import paper_repro

    _, _, stores = rendered
    monkeypatch.setattr(paper_repro, "_sweep_stores", lambda *a: pytest.fail("no sweep may run with --store"))
    code, out, err = repro("figures", "--store", stores["bandit"], "--only", "report", "--out", tmp_path)
    assert code == 0, err
    assert "| bandit |" in (tmp_path / "REPORT.md").read_text() and "wrote 1 files" in out
    code, _, err = repro("figures", "--store", stores["bandit"], "--store", stores["bandit"], "--out", tmp_path)
    assert code == 2 and "file stem" in err and len(err.strip().splitlines()) == 1


def test_repro_figures_quick_runs_every_sweep_then_reuses_them(repro, tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    code, stdout, err = repro("figures", "--quick", "--runs", runs, "--out", out, "--no-progress")
    assert code == 0, err
    substrates = [f"synthetic-{t}" for t in ("bandit", "contextual", "autoregressive")] + ["llm-small", "llm-medium"]
    expected = {out / "REPORT.md"} | {out / f"{s}_table2.md" for s in substrates}
    expected |= {out / f"{s}_{kind}.{ext}" for s in substrates for kind in FIGURES for ext in ("png", "pdf")}
    assert set(out.iterdir()) == expected and f"wrote {len(expected)} files" in stdout
    for path in expected:
        data = path.read_bytes()
        assert data.startswith({".png": b"\x89PNG", ".pdf": b"%PDF", ".md": b"#"}[path.suffix]), path
    assert err.count(": computed ") == 2 * len(substrates)  # every store and its ESS-scaled twin
    assert all(f"| {s} |" in (out / "REPORT.md").read_text() for s in substrates)
    code, _, err = repro("figures", "--quick", "--runs", runs, "--out", out, "--no-progress", "--only", "report")
    assert code == 0 and err.count(": reused ") == 2 * len(substrates) and ": computed " not in err, err
