"""Decode-once uint8 cache of a data set split, memory-mapped on later loads.

A cache entry is a folder with `images.u8` (raw N*3*H*W bytes), `labels.i64` and `meta.json`.
`meta.json` is written last and names the key, the shape and a digest of sampled blocks of both
files; an entry whose key, sizes or digest do not match is rebuilt, never used.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from victims.atomic import atomic_path, write_text_atomic

FORMAT_VERSION = 1
_BLOCK = 1 << 16
_SAMPLES = 32


@dataclass
class CachedArrays:
    images: np.ndarray  # uint8 (N, 3, H, W), memory-mapped copy-on-write
    labels: np.ndarray  # int64 (N,)
    classes: list[str]
    rebuilt: bool


def key_digest(key: dict) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _sampled_digest(path: Path) -> str:
    """sha256 of the size and of evenly spaced blocks: catches truncation and most corruption cheaply."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        for i in range(_SAMPLES):
            f.seek((size - _BLOCK) * i // (_SAMPLES - 1) if size > _BLOCK else 0)
            digest.update(f.read(_BLOCK))
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the folder, held by this process only: a POSIX record lock (lockf), which forked
    children (the decoding pool) do not inherit, so a builder killed mid-way never leaves the lock held."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.lockf(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(lock, fcntl.LOCK_UN)


def _read_valid(folder: Path, key: dict) -> CachedArrays | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT_VERSION or meta.get("key") != json.loads(json.dumps(key, default=str)):
            return None
        shape = tuple(meta["shape"])
        images_path, labels_path = folder / "images.u8", folder / "labels.i64"
        if images_path.stat().st_size != int(np.prod(shape)) or labels_path.stat().st_size != 8 * shape[0]:
            return None
        if meta["digest"] != [_sampled_digest(images_path), _sampled_digest(labels_path)]:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    images = np.memmap(images_path, dtype=np.uint8, mode="c", shape=shape)
    labels = np.fromfile(labels_path, dtype=np.int64)
    return CachedArrays(images, labels, list(meta["classes"]), rebuilt=False)


Writer = Callable[[Callable[[tuple[int, int, int, int]], np.ndarray]], tuple[np.ndarray, list[str]]]


def load_or_build(folder: Path, key: dict, build: Writer) -> CachedArrays:
    """Return the valid cache in `folder` for `key`, building it with `build` when absent or invalid.

    `build(allocate)` calls `allocate(shape)` once to get a writable uint8 array (memory-mapped on
    disk), fills it, and returns (labels, classes).
    """
    cached = _read_valid(folder, key)
    if cached is not None:
        return cached
    with _locked(folder):
        cached = _read_valid(folder, key)  # another process may have built it meanwhile
        if cached is not None:
            return cached
        with contextlib.suppress(FileNotFoundError):
            (folder / "meta.json").unlink()
        holder: dict[str, np.ndarray] = {}
        with atomic_path(folder / "images.u8") as tmp_images:
            def allocate(shape: tuple[int, int, int, int]) -> np.ndarray:
                holder["images"] = np.memmap(tmp_images, dtype=np.uint8, mode="w+", shape=shape)
                return holder["images"]

            labels, classes = build(allocate)
            images = holder["images"]
            images.flush()
            shape = tuple(int(s) for s in images.shape)
            del images, holder["images"]
            labels = np.ascontiguousarray(labels, dtype=np.int64)
            if labels.shape != (shape[0],):
                raise ValueError(f"cache build gave {shape[0]} images but {labels.shape} labels")
            with atomic_path(folder / "labels.i64") as tmp_labels:
                labels.tofile(tmp_labels)
        meta = {"format": FORMAT_VERSION, "key": key, "shape": list(shape), "classes": classes,
                "digest": [_sampled_digest(folder / "images.u8"), _sampled_digest(folder / "labels.i64")]}
        write_text_atomic(folder / "meta.json", json.dumps(meta, indent=1, default=str))
    cached = _read_valid(folder, key)
    if cached is None:
        raise RuntimeError(f"the data cache in {folder} did not verify right after being written")
    cached.rebuilt = True
    return cached
