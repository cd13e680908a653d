"""Data sets: real CIFAR-10 folder, official layouts, the cache, subsets, synthetic data, errors."""
from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.cli.main import main
from benchmark.data import (IMAGENET100_CLASSES, DatasetNotFoundError, balanced_subset, load_dataset,
                            make_synthetic)
from benchmark.data.cache import _locked

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _cache_folder(store: Path, name: str, split: str) -> Path:
    (folder,) = (store / "cache" / "datasets").glob(f"{name}-{split}-*")
    return folder


# ---- the real CIFAR-10 folder -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cifar10(shared_data: Path, session_store: Path):
    return {split: load_dataset("cifar10", split, data_root=shared_data, store=session_store)
            for split in ("train", "test")}


def test_cifar10_folder_sizes_and_classes(cifar10):
    train, test = cifar10["train"], cifar10["test"]
    assert train.images.shape == (50_000, 3, 32, 32) and test.images.shape == (10_000, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert train.classes == CIFAR10_CLASSES == test.classes
    assert train.class_counts().tolist() == [5000] * 10 and test.class_counts().tolist() == [1000] * 10
    assert train.source == "CIFAR-10 (JPEG folder)"


def test_cifar10_pixel_exact_against_direct_jpeg_decode(cifar10, shared_data: Path):
    for split, data in cifar10.items():
        files = [f for c in CIFAR10_CLASSES for f in sorted((shared_data / "cifar10" / split / c).iterdir())]
        assert len(files) == len(data)
        for i in np.random.default_rng(0).choice(len(files), 300, replace=False):
            direct = np.asarray(Image.open(files[i]).convert("RGB")).transpose(2, 0, 1)
            assert np.array_equal(data.images[i].numpy(), direct), files[i]
            assert data.labels[i] == CIFAR10_CLASSES.index(files[i].parent.name)


def test_cifar10_second_load_reads_the_cache(cifar10, shared_data: Path, session_store: Path):
    again = load_dataset("cifar10", "test", data_root=shared_data, store=session_store)
    assert again.cache_rebuilt is False
    assert torch.equal(again.images, cifar10["test"].images)


def test_bench_datasets_shows_cifar10(shared_data: Path, session_store: Path, capsys):
    assert main(["--data-root", str(shared_data), "--store", str(session_store), "datasets"]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("cifar10 "))
    assert "found" in line and "50,000" in line and "10,000" in line and line.split()[-1] == "10"


# ---- the cache ------------------------------------------------------------------------------------------

@pytest.fixture
def small_folder(tmp_path: Path) -> Path:
    """A tiny image-folder data set (`cifar10/<split>/<class>/*.png`) with random pixels."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("test", 2)):
        for c in CIFAR10_CLASSES[:3]:
            (tmp_path / "cifar10" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                    tmp_path / "cifar10" / split / c / f"{i:03d}.png")
    return tmp_path


def test_cache_is_reused_then_rebuilt_when_corrupted(small_folder: Path, tmp_path: Path):
    store = tmp_path / "store"
    first = load_dataset("cifar10", "train", data_root=small_folder, store=store)
    assert first.cache_rebuilt and first.images.shape == (18, 3, 32, 32) and first.source == "CIFAR-10 (PNG folder)"
    reference = first.images.clone()
    assert load_dataset("cifar10", "train", data_root=small_folder, store=store).cache_rebuilt is False
    folder = _cache_folder(store, "cifar10", "train")

    def reload_rebuilds() -> None:
        again = load_dataset("cifar10", "train", data_root=small_folder, store=store)
        assert again.cache_rebuilt is True
        assert torch.equal(again.images, reference)

    with open(folder / "images.u8", "r+b") as f:  # truncated
        f.truncate(100)
    reload_rebuilds()
    with open(folder / "images.u8", "r+b") as f:  # same size, garbled bytes
        f.write(bytes(255 - b for b in f.read(64)))
    reload_rebuilds()
    meta = json.loads((folder / "meta.json").read_text())  # a key that does not match
    meta["key"]["image_size"] = 99
    (folder / "meta.json").write_text(json.dumps(meta))
    reload_rebuilds()
    (folder / "meta.json").unlink()  # an interrupted build leaves no meta
    reload_rebuilds()


def _killed_lock_holder(tmp_path: Path, initializer: str) -> int:
    """Run a process that takes the cache lock, forks a child (which keeps the lock file open, as a decoding
    pool's workers do) and is then SIGKILLed; return the child's pid."""
    ready = tmp_path / "ready"
    holder = subprocess.Popen([sys.executable, "-c", f"""
import os, time
from pathlib import Path
from benchmark.data.cache import _locked
from benchmark.data.layouts import decoder_worker_init
with _locked(Path({str(tmp_path / "cache")!r})):
    pid = os.fork()  # like a decoding pool's worker: it keeps the lock file open
    if pid == 0:
        {initializer}()
        time.sleep(600)
        os._exit(0)
    Path({str(ready)!r}).write_text(str(pid))
    time.sleep(600)
"""], cwd=Path(__file__).resolve().parents[1])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() or not ready.read_text():
            assert time.monotonic() < deadline and holder.poll() is None, "the lock holder did not start"
            time.sleep(0.1)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    return int(ready.read_text())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read().rsplit(") ", 1)[-1].startswith("Z")
    except FileNotFoundError:
        return False


def test_a_builder_killed_while_its_decoders_live_does_not_keep_the_cache_locked(tmp_path: Path):
    child = _killed_lock_holder(tmp_path, "int")  # an orphaned child that outlives its parent
    try:
        assert _alive(child)
        acquired = threading.Event()

        def take() -> None:
            with _locked(tmp_path / "cache"):
                acquired.set()

        threading.Thread(target=take, daemon=True).start()
        assert acquired.wait(15), "the cache lock is still held through the orphaned worker's inherited file"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def test_decoder_workers_die_with_the_process_that_made_them(tmp_path: Path):
    child = _killed_lock_holder(tmp_path, "decoder_worker_init")
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


def test_decoder_workers_end_on_sigterm_whatever_handler_their_parent_has():
    """submitit's jobs catch SIGTERM (and log it); decoder workers forked from such a job must not run that
    handler: a pool's shutdown signals its live workers, and a handler that never returns (here a sleep;
    seen: a fork-inherited logging lock held at the fork) left an Imagenette job waiting on its decoder."""
    script = """
import signal, time
from multiprocessing import Pool
from benchmark.data.layouts import decoder_worker_init
signal.signal(signal.SIGTERM, lambda *_: time.sleep(3600))
with Pool(2, initializer=decoder_worker_init) as pool:
    print(pool.apply(eval, ("__import__('signal').getsignal(15) == __import__('signal').SIG_DFL",)))
"""
    try:
        done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the pool's shutdown hung on a worker: {e.stdout}")
    assert done.returncode == 0 and done.stdout.split()[-1] == "True", (done.stdout, done.stderr)


def test_changed_source_gets_a_new_cache_entry(small_folder: Path, tmp_path: Path):
    store = tmp_path / "store"
    load_dataset("cifar10", "test", data_root=small_folder, store=store)
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(small_folder / "cifar10" / "test" / "bird" / "new.png")
    again = load_dataset("cifar10", "test", data_root=small_folder, store=store)
    assert again.cache_rebuilt and len(again) == 7


def test_image_size_resizes_and_is_part_of_the_key(small_folder: Path, tmp_path: Path):
    store = tmp_path / "store"
    small = load_dataset("cifar10", "train", data_root=small_folder, store=store, image_size=16)
    assert small.images.shape == (18, 3, 16, 16) and small.cache_rebuilt
    assert load_dataset("cifar10", "train", data_root=small_folder, store=store).images.shape[-1] == 32


# ---- errors ----------------------------------------------------------------------------------------------

def test_missing_dataset_lists_paths_tried_and_how_to_provide(tmp_path: Path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("stl10", "train", data_root=tmp_path, store=tmp_path / "store")
    text = str(err.value)
    assert str(tmp_path / "stl10_binary") in text and str(tmp_path / "stl10" / "{train}") in text
    assert "--data-root" in text and "BENCH_DATA" in text and "stl10_binary.tar.gz" in text


def test_no_data_root_says_how_to_set_one(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("BENCH_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="no data root: pass --data-root DIR or set BENCH_DATA"):
        load_dataset("cifar10", "train", store=tmp_path)


def test_unknown_dataset_lists_valid_names(tmp_path: Path):
    with pytest.raises(ValueError, match="valid data sets: cifar10, cifar100, stl10, imagenet100"):
        load_dataset("mnist", data_root=tmp_path)


# ---- official layouts ------------------------------------------------------------------------------------

def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def test_official_cifar10_and_cifar100_layouts(tmp_path: Path):
    rng = np.random.default_rng(1)
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    batches = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data, labels = rng.integers(0, 256, (4, 3072), dtype=np.uint8), rng.integers(0, 10, 4).tolist()
        _pickle(c10 / name, {b"data": data, b"labels": labels})
        batches.append((data, labels))
    _pickle(c10 / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES]})
    train = load_dataset("cifar10", "train", data_root=tmp_path, store=tmp_path / "s")
    assert train.source == "CIFAR-10 (official release)" and train.classes == CIFAR10_CLASSES
    assert np.array_equal(train.images.numpy(), np.concatenate([b[0] for b in batches[:5]]).reshape(-1, 3, 32, 32))
    assert train.labels.tolist() == sum((b[1] for b in batches[:5]), [])
    # the red channel of pixel (row 0, col 1) is byte 1 of a CIFAR row: channel-major, then row-major
    assert train.images[0, 0, 0, 1] == batches[0][0][0, 1] and train.images[0, 1, 0, 0] == batches[0][0][0, 1024]

    c100 = tmp_path / "cifar100" / "cifar-100-python"
    c100.mkdir(parents=True)
    data = rng.integers(0, 256, (5, 3072), dtype=np.uint8)
    _pickle(c100 / "train", {b"data": data, b"fine_labels": [0, 1, 2, 99, 5], b"coarse_labels": [0] * 5})
    _pickle(c100 / "test", {b"data": data[:2], b"fine_labels": [3, 4], b"coarse_labels": [0] * 2})
    _pickle(c100 / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)]})
    c100_train = load_dataset("cifar100", "train", data_root=tmp_path, store=tmp_path / "s")
    assert c100_train.labels.tolist() == [0, 1, 2, 99, 5] and c100_train.num_classes == 100


def test_official_stl10_binary_is_transposed_correctly(tmp_path: Path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (3, 3, 96, 96), dtype=np.uint8)  # (N, C, H, W)
    for split in ("train", "test"):
        images.transpose(0, 1, 3, 2).tofile(folder / f"{split}_X.bin")  # the release stores columns first
        np.array([1, 10, 5], dtype=np.uint8).tofile(folder / f"{split}_y.bin")
    (folder / "class_names.txt").write_text("\n".join(f"k{i}" for i in range(10)) + "\n")
    test = load_dataset("stl10", "test", data_root=tmp_path, store=tmp_path / "s")
    assert np.array_equal(test.images.numpy(), images)
    assert test.labels.tolist() == [0, 9, 4] and test.classes[0] == "k0"
    small = load_dataset("stl10", "test", data_root=tmp_path, store=tmp_path / "s", image_size=32)
    assert small.images.shape == (3, 3, 32, 32)


def test_imagenet100_filters_an_imagenet_tree_and_resizes(tmp_path: Path):
    rng = np.random.default_rng(3)
    for split, wnids in (("train", IMAGENET100_CLASSES + ["n99999999"]), ("val", IMAGENET100_CLASSES)):
        for w in wnids:
            (tmp_path / "imagenet" / split / w).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(
                tmp_path / "imagenet" / split / w / "a.JPEG")
    train = load_dataset("imagenet100", "train", data_root=tmp_path, store=tmp_path / "s", image_size=16)
    assert train.images.shape == (100, 3, 16, 16) and train.classes == sorted(IMAGENET100_CLASSES)
    test = load_dataset("imagenet100", "test", data_root=tmp_path, store=tmp_path / "s", image_size=16)
    assert len(test) == 100  # the val folder serves as the test split
    import shutil
    shutil.rmtree(tmp_path / "imagenet" / "train" / IMAGENET100_CLASSES[0])
    with pytest.raises(DatasetNotFoundError, match="imagenet"):
        load_dataset("imagenet100", "train", data_root=tmp_path, store=tmp_path / "s2", image_size=16)


# ---- subsets and synthetic data --------------------------------------------------------------------------

def test_balanced_subset_is_balanced_aligned_and_seeded():
    data = make_synthetic("train", per_class=30)
    sub = balanced_subset(data, per_class=7, seed=5)
    assert sub.class_counts().tolist() == [7] * 10
    assert torch.equal(sub.images, data.images[sub.index]) and torch.equal(sub.labels, data.labels[sub.index])
    assert torch.equal(balanced_subset(data, 7, seed=5).index, sub.index)
    assert not torch.equal(balanced_subset(data, 7, seed=6).index, sub.index)
    nested = balanced_subset(sub, 3, seed=0)  # index keeps pointing into the full split
    assert torch.equal(nested.images, data.images[nested.index])
    with pytest.raises(ValueError, match="cannot take 31 per class"):
        balanced_subset(data, 31)


def test_synthetic_is_linearly_separable_and_deterministic():
    train, test = make_synthetic("train", per_class=64), make_synthetic("test", per_class=32)
    assert torch.equal(make_synthetic("train", per_class=64).images, train.images)
    assert not torch.equal(test.images[:10], train.images[:10])
    x, xt = train.images.flatten(1).float() / 255, test.images.flatten(1).float() / 255
    mean = x.mean(0)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x - mean), train.labels).backward()
        opt.step()
    accuracy = (model(xt - mean).argmax(1) == test.labels).float().mean().item()
    assert accuracy > 0.5, accuracy  # chance is 0.1
