"""Each figure of `bench figures` written as a non-empty PNG and PDF from smoke-scale fixtures, with the
numbers behind it checked (paper values, spectra, linear separability, histories, t-SNE shapes).

One module fixture builds, in a temporary folder: the smoke `random` and `cp-c` poisons as the grids
specify them, a clean and a CP-C poisoned SimCLR victim (records with alignment/uniformity, checkpoints),
and a few hand-made records for the bar charts.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from attacks.poison import Poison
from benchmark.cli.main import main
from benchmark.grids import attack_spec, grid_cells
from benchmark.jobs.poison import make_poison
from benchmark.jobs.victim import load_split, run_victim, victim_settings
from benchmark.records import RECORD_FORMAT, read_records, record_path, write_json_atomic
from benchmark.report.figures import (FIGURES, Context, alignment_uniformity_figure, amplitude_spectrum, bars_figure,
                                      current_records, matched_cp_records, embedding_histories, find_poisons,
                                      linear_separability, make_figures, perturbation_features, pick_tsne_records,
                                      pyplot, record_label, save_figure, separability_figure, spectrum_figure,
                                      tsne_figure)
from benchmark.report.paper import PAPER_DIR
from benchmark.report.tables import build_tables
from benchmark.scales import get_scale
from benchmark.scales import get_scale
from benchmark.specs import VictimSpec

SCALE = "smoke"
PNG_MAGIC, PDF_MAGIC = b"\x89PNG", b"%PDF"
# hand-made records: (grid, row, column) -> {probed data set: metrics}
HAND_MADE = {
    ("motivation", "none", "supervised"): {"cifar10": {"probe_best": 50.0, "probe_final": 49.0, "knn": 40.0,
                                                       "test_accuracy": 92.25}},
    ("effectiveness", "random", "cifar10/simclr"): {"cifar10": {"probe_best": 33.5, "probe_final": 33.0, "knn": 30.0}},
}
# added for the command test: a ratio-grid point (CP-C made with SimCLR on half the set) and the untrained
# control its damage needs; the record figures must leave the partial record out
RATIO_MADE = {
    ("ratio", "cp-c@simclr", "simclr/0.5"): {"cifar10": {"probe_best": 20.0, "probe_final": 19.0, "knn": 18.0}},
    ("effectiveness", "untrained", "cifar10/simclr"): {"cifar10": {"probe_best": 10.0, "probe_final": 9.0,
                                                                   "knn": 9.0}},
}


def hand_made_record(victim: VictimSpec, metrics: dict) -> dict:
    """A minimal valid record (the settings of the code of now) without alignment/uniformity in its history."""
    return {"format": RECORD_FORMAT, "kind": "victim", "key": victim.key, "scale": SCALE, "victim": victim.to_dict(),
            "attack": victim.attack, "eval": list(metrics), "settings": victim_settings(victim),
            "data": {"train": "synthetic (generated), train 320 images, 32 px",
                     "stands_for": get_scale(SCALE).describe_data(victim.dataset)}, "metrics": metrics,
            "history": [{"epoch": 1, "loss": 1.0}], "timing": {"total_s": 1.0}, "seed": victim.seed}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Context:
    root = tmp_path_factory.mktemp("figures")
    store, results = root / "store", root / "results"
    for row in ("random", "cp-c"):
        make_poison(attack_spec(row, "cifar10", "simclr", SCALE), store=store, device="cpu", progress=False)
    for row in ("none", "cp-c"):
        spec = VictimSpec("simclr", "resnet18", "cifar10", attack_spec(row, "cifar10", "simclr", SCALE), scale=SCALE)
        run_victim(spec, store=store, results=results, device="cpu", progress=False)
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    for where, metrics in HAND_MADE.items():
        victim = cells[where].victim
        write_json_atomic(record_path(results, SCALE, victim.key), hand_made_record(victim, metrics))
    return Context(SCALE, root / "figures", results, store, None, "cpu")


def assert_images(folder: Path, name: str) -> None:
    for ext, magic in (("png", PNG_MAGIC), ("pdf", PDF_MAGIC)):
        path = folder / f"{name}.{ext}"
        assert path.is_file() and path.stat().st_size > 1000, path
        assert path.read_bytes()[:4] == magic
    assert not list(folder.glob(".*.tmp*")), "temporary files left behind"


def paper_csv(grid: str) -> dict[tuple[str, str], float]:
    if not (PAPER_DIR / f"{grid}.csv").is_file():  # a grid the paper has no table of (ratio; defenses: see docs)
        return {}
    with open(PAPER_DIR / f"{grid}.csv", newline="") as f:
        return {(r["row"], r["column"]): float(r["value"]) for r in csv.DictReader(f)}


def test_bars_hold_the_paper_values_and_ours(built: Context, tmp_path: Path) -> None:
    values = {}
    for table in build_tables("all", SCALE, built.results):
        fig, values[table.grid] = bars_figure(table)
        paper = paper_csv(table.grid)
        assert paper or table.grid in ("defenses", "ratio", "leaderboard")  # no paper table of their own
        assert {k: p for k, (_, p) in values[table.grid].items() if p is not None} == paper
        if table.grid == "motivation":  # the command test writes every one
            save_figure(fig, tmp_path, "bars_motivation")
            assert_images(tmp_path, "bars_motivation")
        else:
            pyplot().close(fig)
    assert values["motivation"][("none", "supervised")] == (92.25, 94.6)  # supervised: its classifier's accuracy
    assert values["motivation"][("ap-t", "supervised")] == (None, 6.3)  # not measured: the paper bar only
    clean = next(r for r in read_records(built.results, SCALE) if record_label(r) == "none / simclr")
    assert values["effectiveness"][("none", "cifar10/simclr")] == (clean["metrics"]["cifar10"]["probe_best"], 91.8)


def test_amplitude_spectrum_of_known_patterns() -> None:
    constant = torch.full((4, 3, 8, 8), 2, dtype=torch.int8)
    spectrum = amplitude_spectrum(constant)
    assert spectrum.shape == (8, 8)
    assert spectrum[4, 4] == pytest.approx(2 * 64) and spectrum.sum() == pytest.approx(2 * 64)  # DC at the centre
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2 - 1).to(torch.int8).expand(2, 3, 8, 8)
    spectrum = amplitude_spectrum(checker)
    assert spectrum[0, 0] == pytest.approx(64) and spectrum.sum() == pytest.approx(64)  # highest frequency: corner


def test_spectrum_figure(built: Context) -> None:
    poisons, notes = find_poisons(SCALE, built.store)
    assert set(poisons) == {"random", "cp-c"}
    assert any(n.startswith("ue-s: no poison") for n in notes)
    fig, spectra = spectrum_figure(poisons)
    assert {k: v.shape for k, v in spectra.items()} == {"random": (32, 32), "cp-c": (32, 32)}
    assert (spectra["random"] > 0).all()
    save_figure(fig, built.out, "spectrum")
    assert_images(built.out, "spectrum")


def test_separability_class_wise_vs_random(built: Context) -> None:
    poisons, _ = find_poisons(SCALE, built.store)
    data = load_split(get_scale(SCALE), "cifar10", "train")
    features = perturbation_features(poisons["cp-c"], data)
    assert features.shape == (len(data), 3 * 32 * 32)
    fig, accuracy = separability_figure(poisons, data)
    assert accuracy["cp-c"] >= 95  # one pattern per class: perfectly separable
    assert accuracy["random"] <= 35  # fresh noise per sample: about chance (10%) on held-out samples
    save_figure(fig, built.out, "separability")
    assert_images(built.out, "separability")


def test_linear_separability_on_synthetic_features() -> None:
    labels = torch.arange(200) % 4
    separable = torch.nn.functional.one_hot(labels, 4).float() + 0.01 * torch.randn(200, 4)
    assert linear_separability(separable, labels) == 100.0
    assert linear_separability(torch.randn(200, 50, generator=torch.Generator().manual_seed(0)), labels) < 60


def test_alignment_uniformity(built: Context) -> None:
    records = read_records(built.results, SCALE)
    histories, skipped = embedding_histories(records)
    assert list(histories) == ["none / simclr", "cp-c / simclr"]  # clean first
    assert sorted(skipped) == ["none / supervised", "random / simclr"]
    poisoned = next(r for r in records if record_label(r) == "cp-c / simclr")
    assert [h["alignment"] for h in histories["cp-c / simclr"]] == [h["alignment"] for h in poisoned["history"]]
    # the figure compares clean with matched CP: the supervised and random victims are not drawn
    assert sorted(record_label(r) for r in matched_cp_records(records)) == ["cp-c / simclr", "none / simclr"]
    moco_cp = {**poisoned, "victim": {**poisoned["victim"], "algorithm": "moco"}}  # CP-C made with SimCLR
    assert matched_cp_records([moco_cp, {**poisoned, "victim": {**poisoned["victim"], "seed": 1113}}]) == []
    fig, _ = alignment_uniformity_figure(histories)
    save_figure(fig, built.out, "alignment_uniformity")
    assert_images(built.out, "alignment_uniformity")


def test_tsne(built: Context) -> None:
    clean, poisoned = pick_tsne_records(read_records(built.results, SCALE))
    assert record_label(clean) == "none / simclr" and record_label(poisoned) == "cp-c / simclr"
    without_clean = pick_tsne_records(read_records(built.results, SCALE), lambda r: r["victim"].get("poison"))
    assert without_clean[0] is None and record_label(without_clean[1]) == "cp-c / simclr"
    test = load_split(get_scale(SCALE), "cifar10", "test")
    fig, out = tsne_figure({"clean": clean, "cp-c": poisoned}, test, built.store, samples=100)
    for result in out.values():
        assert result["embedding"].shape == (100, 2) and result["labels"].shape == (100,)
        assert result["epoch"] == get_scale(SCALE).train["simclr"].epochs
        assert -1 <= result["silhouette"] <= 1
    save_figure(fig, built.out, "tsne")
    assert_images(built.out, "tsne")


def test_command_writes_every_figure(built: Context, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import shutil

    out, results = tmp_path / "figs", tmp_path / "results"
    shutil.copytree(built.results, results)
    cells = {(c.grid, c.row, c.column): c for c in grid_cells("all", SCALE)}
    for where, metrics in RATIO_MADE.items():
        victim = cells[where].victim
        write_json_atomic(record_path(results, SCALE, victim.key), hand_made_record(victim, metrics))
    assert main(["figures", "--scale", SCALE, "--results", str(results), "--store", str(built.store),
                 "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    for name in FIGURES:
        assert_images(out, name)
        assert f"wrote {out / name}.png" in printed
    assert "note: ue-s: no poison" in printed and "records without alignment/uniformity" not in printed
    separability = next(line for line in printed.splitlines() if "linear separability:" in line)
    assert "cp-c 100.0%" in separability, separability


def test_out_of_date_records_are_left_out_of_the_record_figures(built: Context, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    import json
    import shutil

    results = tmp_path / "results"
    shutil.copytree(built.results, results)
    clean = next(r for r in read_records(results, SCALE) if record_label(r) == "none / simclr")
    stale = {**clean, "key": "0" * 20, "victim": {**clean["victim"], "seed": 7},
             "settings": {**clean["settings"], "lr": 123.0}}  # made with a setting the code no longer uses
    (results / "records" / SCALE / f"{'0' * 20}.json").write_text(json.dumps(stale))
    histories, _ = embedding_histories(read_records(results, SCALE))
    assert len(histories) == 3  # the stale record is there to be left out
    ctx = Context(SCALE, tmp_path / "figs", results, built.store, None, "cpu")
    assert [r["key"] for r in current_records(ctx)] == [r["key"] for r in read_records(built.results, SCALE)]
    assert "1 out-of-date record(s) left out" in capsys.readouterr().out


def test_missing_inputs_are_skipped_with_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ctx = Context(SCALE, tmp_path / "figs", tmp_path / "results", tmp_path / "store", None, "cpu")
    written, skipped = make_figures(ctx, ["bars_motivation", "spectrum", "separability", "alignment_uniformity",
                                          "tsne"])
    assert [p.name for p in written] == ["bars_motivation.png", "bars_motivation.pdf"]
    assert set(skipped) == {"spectrum", "separability", "alignment_uniformity", "tsne"}
    assert "no poison found" in skipped["spectrum"] and "no clean SimCLR" in skipped["tsne"]
    assert "skipped tsne:" in capsys.readouterr().out


def test_poison_fixture_is_the_grid_spec(built: Context) -> None:
    """The figures find poisons by the grids' specs: the fixture's poisons are those, not look-alikes."""
    poisons, _ = find_poisons(SCALE, built.store)
    assert isinstance(poisons["cp-c"], Poison) and poisons["cp-c"].per == "class"
    assert poisons["cp-c"].spec == attack_spec("cp-c", "cifar10", "simclr", SCALE).to_dict()
