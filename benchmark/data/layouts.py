"""Readers for the on-disk layouts a data set may come in: official binaries and image folders.

Each layout knows how to recognise itself under a folder, describe a split without decoding it,
fingerprint its files (part of the cache key) and decode a split into a uint8 (N, 3, H, W) array.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}
Allocate = Callable[[tuple[int, int, int, int]], np.ndarray]


@dataclass(frozen=True)
class SplitInfo:
    count: int
    classes: list[str]


def resize_square(images: np.ndarray, size: int, chunk: int = 1024) -> np.ndarray:
    """Resize square uint8 (N, 3, s, s) images to (N, 3, size, size), antialiased bilinear."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    out = np.empty((images.shape[0], 3, size, size), dtype=np.uint8)
    for start in range(0, images.shape[0], chunk):
        x = torch.from_numpy(np.ascontiguousarray(images[start:start + chunk])).float()
        y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start:start + chunk] = y.round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def _unpickle(path: Path) -> dict:
    # The official CIFAR release is a Python pickle; only data the user placed on disk is read here.
    with open(path, "rb") as f:
        return pickle.load(f, encoding="bytes")


class CifarPickle:
    """torchvision's official CIFAR layout: `cifar-10-batches-py/` or `cifar-100-python/`."""

    kind = "official"

    def __init__(self, folder: str, train: Sequence[str], test: Sequence[str], meta: str,
                 names_key: bytes, labels_key: bytes):
        self.folder, self.files = folder, {"train": list(train), "test": list(test)}
        self.meta, self.names_key, self.labels_key = meta, names_key, labels_key

    def detect(self, base: Path, split: str) -> Path | None:
        path = base / self.folder
        ok = all((path / f).is_file() for f in self.files[split] + [self.meta])
        return path if ok else None

    def classes(self, path: Path) -> list[str]:
        return [n.decode() for n in _unpickle(path / self.meta)[self.names_key]]

    def describe(self, path: Path, split: str) -> SplitInfo:
        count = sum(len(_unpickle(path / f)[self.labels_key]) for f in self.files[split])
        return SplitInfo(count, self.classes(path))

    def fingerprint(self, path: Path, split: str) -> list:
        return [_file_stamp(path / f) for f in self.files[split] + [self.meta]]

    def build(self, path: Path, split: str, allocate: Allocate, image_size: int | None):
        batches = [_unpickle(path / f) for f in self.files[split]]
        data = np.concatenate([b[b"data"] for b in batches]).reshape(-1, 3, 32, 32)
        labels = np.concatenate([np.asarray(b[self.labels_key]) for b in batches])
        data = resize_square(data, image_size or 32)
        allocate(data.shape)[:] = data
        return labels, self.classes(path)


class Stl10Binary:
    """The official STL-10 binary layout (`stl10_binary/`), labelled train and test splits."""

    kind = "official"
    folder = "stl10_binary"

    def detect(self, base: Path, split: str) -> Path | None:
        path = base / self.folder
        ok = all((path / f).is_file() for f in (f"{split}_X.bin", f"{split}_y.bin", "class_names.txt"))
        return path if ok else None

    def classes(self, path: Path) -> list[str]:
        return [line.strip() for line in (path / "class_names.txt").read_text().splitlines() if line.strip()]

    def describe(self, path: Path, split: str) -> SplitInfo:
        return SplitInfo((path / f"{split}_y.bin").stat().st_size, self.classes(path))

    def fingerprint(self, path: Path, split: str) -> list:
        return [_file_stamp(path / f) for f in (f"{split}_X.bin", f"{split}_y.bin", "class_names.txt")]

    def build(self, path: Path, split: str, allocate: Allocate, image_size: int | None):
        raw = np.fromfile(path / f"{split}_X.bin", dtype=np.uint8).reshape(-1, 3, 96, 96)
        images = raw.transpose(0, 1, 3, 2)  # stored column-major per channel
        labels = np.fromfile(path / f"{split}_y.bin", dtype=np.uint8).astype(np.int64) - 1
        images = resize_square(images, image_size or 96)
        allocate(images.shape)[:] = images
        return labels, self.classes(path)


def decoder_worker_init() -> None:
    """Pool initializer. SIGTERM ends the worker: it does not keep a handler inherited from the process that
    forked it (submitit's jobs log and ignore SIGTERM; a worker running that handler, e.g. stuck on a logging
    lock copied locked by the fork, never exits and the pool's shutdown waits on it forever). On Linux, the
    worker also gets SIGTERM when the process that made it dies (a killed job leaves no orphaned decoders)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends the pool
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _decode_chunk(job: tuple[list[str], int]) -> np.ndarray:
    """Decode a list of images to uint8 (k, 3, size, size) (one task per chunk keeps IPC cheap)."""
    paths, size = job
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(paths):
        img = _decode(path, size)
        if img.shape != out.shape[1:]:
            raise ValueError(f"{path} decodes to {img.shape[2]}x{img.shape[1]}, but the split's images are "
                             f"{size}x{size}: give an image size to resize them")
        out[i] = img
    return out


def _decode(path: str, size: int | None) -> np.ndarray:
    """Decode one image to uint8 (3, H, W); with a size, resize the shorter side and centre-crop."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            w, h = im.size
            scale = size / min(w, h)
            im = im.resize((max(size, round(w * scale)), max(size, round(h * scale))), Image.BILINEAR)
            left, top = (im.size[0] - size) // 2, (im.size[1] - size) // 2
            im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)


class ImageFolder:
    """`<base>/<dataset folder>/<split>/<class>/<image>`: one sub-folder per class, sorted by name.

    `class_filter` keeps only the listed classes (ImageNet-100 from a full ImageNet tree); all of them
    must be present.
    """

    kind = "image folder"

    def __init__(self, folder: str, split_dirs: dict[str, Sequence[str]], class_filter: Sequence[str] | None = None):
        self.folder, self.split_dirs = folder, split_dirs
        self.class_filter = sorted(class_filter) if class_filter else None

    def detect(self, base: Path, split: str) -> Path | None:
        for name in self.split_dirs[split]:
            path = base / self.folder / name
            if path.is_dir() and self._class_dirs(path, strict=False):
                return path
        return None

    def _class_dirs(self, path: Path, strict: bool = True) -> list[Path]:
        dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        if self.class_filter is None:
            return dirs
        present = {p.name: p for p in dirs}
        missing = [c for c in self.class_filter if c not in present]
        if missing:
            if not strict:
                return []
            raise FileNotFoundError(f"{path} lacks {len(missing)} of the {len(self.class_filter)} required "
                                    f"class folders (first missing: {', '.join(missing[:5])})")
        return [present[c] for c in self.class_filter]

    def files(self, path: Path) -> tuple[list[str], np.ndarray, list[str]]:
        dirs = self._class_dirs(path)
        files, labels = [], []
        for label, d in enumerate(dirs):
            names = sorted(e.name for e in os.scandir(d) if Path(e.name).suffix.lower() in IMAGE_SUFFIXES)
            files += [str(d / n) for n in names]
            labels += [label] * len(names)
        return files, np.asarray(labels, dtype=np.int64), [d.name for d in dirs]

    def describe(self, path: Path, split: str) -> SplitInfo:
        files, _, classes = self.files(path)
        return SplitInfo(len(files), classes)

    def fingerprint(self, path: Path, split: str) -> list:
        stamps = []
        for d in self._class_dirs(path):
            st = d.stat()
            stamps.append([d.name, sum(1 for _ in os.scandir(d)), st.st_mtime_ns])
        return stamps

    def build(self, path: Path, split: str, allocate: Allocate, image_size: int | None, workers: int | None = None):
        files, labels, classes = self.files(path)
        if not files:
            raise FileNotFoundError(f"no images under {path}")
        first = _decode(files[0], image_size)
        if image_size is None:
            image_size = first.shape[-1]
            if first.shape[-2] != image_size:
                raise ValueError(f"{files[0]} is {first.shape[-1]}x{first.shape[-2]}, not square: "
                                 "give an image size so that images are resized and centre-cropped")
        out = allocate((len(files), 3, image_size, image_size))
        workers = workers or min(4, os.cpu_count() or 1)
        chunk = 500
        jobs = [(files[i:i + chunk], image_size) for i in range(0, len(files), chunk)]
        with Pool(workers, initializer=decoder_worker_init) as pool, \
                tqdm(total=len(files), desc=f"decoding {path}", unit="img", mininterval=2, leave=False) as bar:
            for i, block in enumerate(pool.imap(_decode_chunk, jobs)):
                out[i * chunk:i * chunk + len(block)] = block
                bar.update(len(block))
            pool.close()  # workers leave on their own; the `with` then has none left to signal
            pool.join()
        return labels, classes


def _file_stamp(path: Path) -> list:
    st = path.stat()
    return [path.name, st.st_size, st.st_mtime_ns]
