"""`bench import-poison`: a poison made elsewhere becomes the verified attack `ext:NAME`, in every format it may
come in; a bad file is refused with the reason and leaves the store as it was; an imported poison runs through a
grid row into the tables and the leaderboard."""
from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from attacks import AttackSpec, Poison, PoisonError, generate_poison
from attacks.external import ExternalNameError, external_spec
from attacks.poison import checksum
from benchmark.cli.main import main
from benchmark.grids import grid_cells
from benchmark.jobs.import_poison import ImportPoisonError, Source, import_poison, interpret
from benchmark.jobs.poison import load_poison, make_poison, poison_path
from benchmark.jobs.splits import whole_split_size
from benchmark.jobs.victim import load_split
from benchmark.records import read_record, record_path
from benchmark.scales import get_scale

SCALE, DATASET, EPS = "smoke", "cifar10", 8 / 255


@pytest.fixture(scope="module")
def clean():
    return load_split(get_scale(SCALE), DATASET, "train")


@pytest.fixture(scope="module")
def made(clean) -> Poison:
    """The poison `random` makes for the smoke split (what other code would have released)."""
    return generate_poison(AttackSpec("random", DATASET, scale=SCALE), clean.images, clean.labels, clean.index)


def nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def write_folder(folder: Path, images: np.ndarray, labels: torch.Tensor, classes: list[str]) -> Path:
    """Poisoned images as PNG files <class>/<nnnnn>.png, numbered in the split's order."""
    for i, (img, label) in enumerate(zip(images, labels.tolist())):
        (folder / classes[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(nhwc(img[None])[0]).save(folder / classes[label] / f"{i:05d}.png")
    return folder


def export_all(made: Poison, clean, folder: Path) -> dict[str, tuple[Path, dict]]:
    """The poison in every accepted format: name -> (path, options to import it with)."""
    folder.mkdir(parents=True, exist_ok=True)
    d = made.delta.numpy()
    poisoned = made.apply(clean.images, clean.labels, clean.index).numpy()
    reverse = np.arange(len(d))[::-1].copy()  # rows in another order, matched by their ids
    out = {}
    np.save(folder / "unit.npy", d.astype(np.float32) / 255)
    out["npy-unit"] = (folder / "unit.npy", {})
    np.save(folder / "pixels-nhwc.npy", nhwc(d))
    out["npy-int8-nhwc"] = (folder / "pixels-nhwc.npy", {})
    np.savez(folder / "ids.npz", delta=nhwc(d[reverse]).astype(np.float64), index=clean.index.numpy()[reverse],
             labels=clean.labels.numpy()[reverse])
    out["npz-ids"] = (folder / "ids.npz", {})
    save_file({"perturbation": torch.from_numpy(d.astype(np.float32) / 255), "index": clean.index},
              str(folder / "delta.safetensors"))
    out["safetensors"] = (folder / "delta.safetensors", {})
    out["own-file"] = (made.save(folder / "own.safetensors"), {})
    torch.save({"delta": made.delta}, folder / "delta.pt")
    out["torch"] = (folder / "delta.pt", {})
    np.save(folder / "poisoned.npy", poisoned)
    out["images-npy"] = (folder / "poisoned.npy", {})
    np.savez(folder / "poisoned.npz", images=nhwc(poisoned).astype(np.float32) / 255)
    out["images-npz-unit"] = (folder / "poisoned.npz", {})
    out["images-folder"] = (write_folder(folder / "pngs", poisoned, clean.labels, clean.classes), {})
    return out


def test_a_random_poison_exported_to_each_format_imports_back_with_the_same_checksum(tmp_path, made, clean):
    store = tmp_path / "store"
    # poisoned images cannot keep the part of a perturbation clipped at 0 or 255: theirs is the effective one
    effective = (made.apply(clean.images, clean.labels, clean.index).int() - clean.images.int()).to(torch.int8)
    assert not torch.equal(effective, made.delta)  # the synthetic data has saturated pixels: a real difference
    for name, (path, options) in export_all(made, clean, tmp_path / "exports").items():
        imported = import_poison(name, path, dataset=DATASET, scale=SCALE, store=store, **options).poison
        spec = external_spec(name, DATASET, SCALE)
        delta = effective if name.startswith("images") else made.delta
        assert imported.checksum == checksum(delta, made.index, spec.to_dict(), "sample", EPS), name
        assert torch.equal(imported.apply(clean.images, clean.labels, clean.index),
                           made.apply(clean.images, clean.labels, clean.index)), name
        assert load_poison(spec, store).checksum == imported.checksum  # stored where the jobs look
        assert torch.equal(imported.delta, delta) and torch.equal(imported.index, made.index), name
        report = json.loads(poison_path(spec, store).with_suffix(".json").read_text())
        assert report["external"] is True and report["kind"] == "poison" and report["checksum"] == imported.checksum
        assert report["source"]["path"] == str(path.resolve())
        if path.is_file():
            assert report["source"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_per_class_poison_and_what_was_assumed_is_printed(tmp_path, clean, capsys):
    g = torch.Generator().manual_seed(3)
    classwise = torch.randint(-8, 9, (clean.num_classes, 3, 32, 32), generator=g, dtype=torch.int8)
    np.save(tmp_path / "classwise.npy", nhwc(classwise.numpy()).astype(np.float32) / 255)
    assert main(["import-poison", "cw", str(tmp_path / "classwise.npy"), "--dataset", DATASET, "--scale", SCALE,
                 "--store", str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "as delta in 0-1 units, laid out (rows, H, W, 3), one per class" in out and "imported ext:cw" in out
    p = load_poison(external_spec("cw", DATASET, SCALE), tmp_path / "store")
    assert p.per == "class" and torch.equal(p.delta, classwise)


class Trap:
    """An object whose unpickling would create a file: reading a poison must never run it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def bad_files(made: Poison, clean, folder: Path) -> list[tuple[str, Path, dict, str]]:
    """(what, file, import options, the error it must give)."""
    folder.mkdir(parents=True, exist_ok=True)
    d = made.delta.numpy().astype(np.float32)
    cases = []

    def npy(name: str, array: np.ndarray) -> Path:
        np.save(folder / name, array)
        return folder / name

    cases.append(("a shape that does not match the split", npy("short.npy", d[:-1]), {},
                  r"319 rows do not match the split: expected \(320, 3, 32, 32\).*add an 'index' array"))
    cases.append(("images of another size", npy("small.npy", d[:, :, :16, :16]), {},
                  r"shape \(320, 3, 16, 16\) does not match the split: expected \(320, 3, 32, 32\)"))
    over = d.copy()
    over[5, 0, 0, 0], over[9, 1, 2, 3] = 10, -11
    cases.append(("an L-inf norm above eps", npy("over.npy", over), {},
                  r"above eps = 8/255 in 2 of 320 rows, by up to 3/255 \(largest \|delta\| 11/255\)"))
    cases.append(("the same within a larger declared eps, over a smaller one", npy("over4.npy", d), {"eps": 4 / 255},
                  r"above eps = 4/255 in \d+ of 320 rows, by up to 4/255"))
    nan = d.copy()
    nan[0, 0, 0, :2] = [np.nan, np.inf]
    cases.append(("NaN or inf", npy("nan.npy", nan), {}, "2 values are NaN or inf"))
    ids = clean.index.numpy().copy()
    ids[0] = 10_000
    np.savez(folder / "ids.npz", delta=d, index=ids)
    cases.append(("ids that are not the split's", folder / "ids.npz", {},
                  r"lacks 1 of the split's 320 sample ids \(first: \[0\]\): the poison's order cannot be matched"))
    labels = clean.labels.numpy()[::-1].copy()
    np.savez(folder / "labels.npz", delta=d, labels=labels)
    cases.append(("labels in another order", folder / "labels.npz", {},
                  "'labels' disagree with the split's labels at .* the poison's order cannot be matched"))
    poisoned = made.apply(clean.images, clean.labels, clean.index).numpy()
    shuffled = poisoned[np.random.default_rng(0).permutation(len(poisoned))]
    cases.append(("poisoned images in another order", npy("shuffled.npy", shuffled), {},
                  "most images differ from the clean image at the same position"))
    pngs = write_folder(folder / "pngs", poisoned, clean.labels, clean.classes)
    moved = next((pngs / clean.classes[0]).iterdir())
    moved.rename(pngs / clean.classes[1] / moved.name)
    cases.append(("an image folder whose classes do not match the split", pngs, {},
                  "class 'class0' has 31 images but the split has 32: its order cannot be matched"))
    cases.append(("an ambiguous value range", npy("ambiguous.npy", d / 255 * 1.5), {},
                  "cannot tell the units.*pass --units 0-1 or --units 0-255"))
    (folder / "poison.pkl").write_bytes(pickle.dumps({"delta": d, "trap": Trap(folder / "UNPICKLED")}))
    cases.append(("an unknown format (a pickle)", folder / "poison.pkl", {}, "unknown format '.pkl'"))
    np.save(folder / "objects.npy", np.array([Trap(folder / "UNPICKLED")], dtype=object), allow_pickle=True)
    cases.append(("a pickled NumPy array", folder / "objects.npy", {}, "cannot be read as npy without unpickling"))
    torch.save({"delta": made.delta, "trap": Trap(folder / "UNPICKLED")}, folder / "trap.pt")
    cases.append(("a torch file with an object", folder / "trap.pt", {}, "cannot be read as pt without unpickling"))
    return cases


def test_bad_poisons_are_refused_with_the_reason_and_the_store_is_left_alone(tmp_path, made, clean, capsys):
    store = tmp_path / "store"
    existing = import_poison("kept", made.save(tmp_path / "good.safetensors"), dataset=DATASET, scale=SCALE,
                             store=store).poison
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*") if "poisons" in p.parts)
    for what, path, options, message in bad_files(made, clean, tmp_path / "bad"):
        for name in ("new", "kept"):
            with pytest.raises(ImportPoisonError, match=message):
                import_poison(name, path, dataset=DATASET, scale=SCALE, store=store, **options)
        eps = ["--eps", f"{round(options['eps'] * 255)}/255"] if "eps" in options else []
        assert main(["import-poison", "new", str(path), "--dataset", DATASET, "--scale", SCALE, *eps,
                     "--store", str(store)]) == 2, what
        assert "bench import-poison: " in capsys.readouterr().err
        assert sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*") if "poisons" in p.parts) == before, what
    assert not (tmp_path / "bad" / "UNPICKLED").exists()  # no file was unpickled
    # another poison under a taken name is refused unless replaced; the same one again changes nothing
    np.save(tmp_path / "other.npy", -made.delta.numpy())
    with pytest.raises(ImportPoisonError, match="already imported .* pass --replace"):
        import_poison("kept", tmp_path / "other.npy", dataset=DATASET, scale=SCALE, store=store)
    again = import_poison("kept", tmp_path / "good.safetensors", dataset=DATASET, scale=SCALE, store=store)
    assert again.poison.checksum == existing.checksum and "already imported, unchanged" in again.notes[0]
    assert sorted((p.name, p.stat().st_mtime_ns) for p in store.rglob("*") if "poisons" in p.parts) == before
    with pytest.raises(ExternalNameError, match="not valid"):
        import_poison("a/b", tmp_path / "good.safetensors", dataset=DATASET, scale=SCALE, store=store)
    replaced = import_poison("kept", tmp_path / "other.npy", dataset=DATASET, scale=SCALE, store=store, replace=True)
    assert replaced.poison.checksum != existing.checksum


def test_an_external_poison_is_never_generated(tmp_path):
    spec = external_spec("nowhere", DATASET, SCALE)
    with pytest.raises(PoisonError, match="bench import-poison nowhere FILE --dataset cifar10 --scale smoke"):
        make_poison(spec, store=tmp_path)
    assert not (tmp_path / "poisons").exists()


def test_an_imported_poison_runs_through_a_smoke_grid_row_into_the_tables(tmp_path, made, capsys):
    where = ["--store", str(tmp_path / "store"), "--results", str(tmp_path / "results")]
    run = ["run", "--grid", "effectiveness", "--scale", SCALE, "--cluster", "debug", "--rows", "ext:rnd",
           "--columns", "cifar10/simclr", *where]
    with pytest.raises(SystemExit, match="nothing submitted: the poison ext:rnd .* `bench import-poison rnd FILE"):
        main(run)
    assert not (tmp_path / "results" / "records").exists()
    np.save(tmp_path / "rnd.npy", made.delta.numpy().astype(np.float32) / 255)
    assert main(["import-poison", "rnd", str(tmp_path / "rnd.npy"), "--dataset", DATASET, "--scale", SCALE,
                 "--store", str(tmp_path / "store")]) == 0
    assert main(run) == 0
    spec = external_spec("rnd", DATASET, SCALE)
    cell = next(c for c in grid_cells("effectiveness", SCALE, ["ext:rnd"])
                if (c.row, c.column) == ("ext:rnd", "cifar10/simclr"))
    record = read_record(record_path(tmp_path / "results", SCALE, cell.victim.key))
    sha = hashlib.sha256((tmp_path / "rnd.npy").read_bytes()).hexdigest()
    assert record["poison"]["external"] is True and record["poison"]["source_sha256"] == sha
    assert record["poison"]["checksum"] == load_poison(spec, tmp_path / "store").checksum
    capsys.readouterr()
    assert main(["tables", "--grid", "effectiveness", "--scale", SCALE, "--format", "csv", *where[2:]]) == 0
    ours = record["metrics"][DATASET]["probe_best"]
    lines = capsys.readouterr().out.splitlines()
    assert f"effectiveness,ext:rnd,cifar10/simclr,{ours:.2f},,{SCALE},1," in lines  # not a paper row: no paper value
    assert "effectiveness,ext:rnd,cifar10/moco,,,smoke,0," in lines
    assert main(["leaderboard", "--scale", SCALE, "--format", "json", *where[2:]]) == 0
    doc = json.loads(capsys.readouterr().out)
    ext = next(s for s in doc["incomplete"] if s["attack"] == "ext:rnd")
    assert ext["source_sha256"] == sha and ext["victims"][0]["record"] == cell.victim.key
    # `bench victim --attack ext:NAME` of a poison not imported fails with the way out
    assert main(["victim", "--algorithm", "simclr", "--attack", "ext:absent", "--scale", SCALE, *where]) == 2
    assert "bench import-poison absent FILE" in capsys.readouterr().err


def test_a_whole_split_poison_at_a_subset_scale_keeps_the_subsets_rows(shared_data, session_store, tmp_path, capsys):
    """At mini, CIFAR-10 trains on 10,000 of its 50,000 training images: a per-sample poison released for the whole
    split in the data set's order (as the authors' code and most others save it) is accepted, cut to the rows of
    the subset and said so; a wrong row count is still refused, naming the sizes that fit."""
    scale, whole = get_scale("mini"), 50_000
    clean = load_split(scale, DATASET, "train", data_root=shared_data, store=session_store)
    assert len(clean) == 10_000 and whole_split_size(scale, DATASET, "train", data_root=shared_data) == whole
    assert whole_split_size(get_scale("paper"), DATASET, "train") is None  # the paper scale takes it all
    assert whole_split_size(get_scale(SCALE), DATASET, "train") is None  # generated data
    path = tmp_path / "whole.npy"  # int8 pixels (N, H, W, 3): channels 0 and 1 spell the row's position
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.int8, shape=(whole, 32, 32, 3))
    position = np.arange(whole)
    rows[..., 0] = ((position % 17) - 8)[:, None, None]
    rows[..., 1] = ((position // 17 % 17) - 8)[:, None, None]
    rows.flush()
    del rows
    spec = external_spec("whole-split", DATASET, "mini")
    try:
        assert main(["import-poison", "whole-split", str(path), "--dataset", DATASET, "--scale", "mini",
                     "--data-root", str(shared_data), "--store", str(session_store)]) == 0
        out = capsys.readouterr().out
        assert "the 50,000 rows cover the whole split in the data set's order: kept the 10,000 rows" in out
        poison = load_poison(spec, session_store)
        assert poison.per == "sample" and tuple(poison.delta.shape) == (10_000, 3, 32, 32)
        assert torch.equal(poison.index, clean.index)
        kept = clean.index.numpy()
        assert np.array_equal(poison.delta[:, 0, 5, 7].numpy(), (kept % 17) - 8)
        assert np.array_equal(poison.delta[:, 1, 5, 7].numpy(), (kept // 17 % 17) - 8)
        assert not poison.delta[:, 2].any()
    finally:
        for made in (poison_path(spec, session_store), poison_path(spec, session_store).with_suffix(".json")):
            made.unlink(missing_ok=True)
    for n in (whole - 1, whole + 1):  # a view, not 150 MB: the row count is refused before any pixel is read
        wrong = Source(np.broadcast_to(np.zeros((1, 32, 32, 3), np.int8), (n, 32, 32, 3)), "npy")
        with pytest.raises(ImportPoisonError, match=rf"{n} rows do not match the split: expected \(10000, 3, 32, 32\)"
                           r".* per sample \(50000 for the whole split, in the data set's order\)"):
            interpret(wrong, clean, EPS, whole=whole)
        with pytest.raises(ImportPoisonError, match=rf"{n} rows do not match the split's 10000 samples nor the whole "
                           r"split's 50000; .*add an 'index' array"):
            interpret(wrong, clean, EPS, per="sample", whole=whole)
