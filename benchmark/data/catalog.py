"""The data sets the benchmark knows, where each is looked for, and `load_dataset`."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..paths import DATA_ENV, data_roots, store_root
from .cache import key_digest, load_or_build
from .imagedata import ImageData, balanced_subset
from .layouts import CifarPickle, ImageFolder, SplitInfo, Stl10Binary
from .synthetic import make_synthetic

SPLITS = ("train", "test")

IMAGENET100_CLASSES = """
n02869837 n01749939 n02488291 n02107142 n13037406 n02091831 n04517823 n04589890 n03062245 n01773797
n01735189 n07831146 n07753275 n03085013 n04485082 n02105505 n01983481 n02788148 n03530642 n04435653
n02086910 n02859443 n13040303 n03594734 n02085620 n02099849 n01558993 n04493381 n02109047 n04111531
n02877765 n04429376 n02009229 n01978455 n02106550 n01820546 n01692333 n07714571 n02974003 n02114855
n03785016 n03764736 n03775546 n02087046 n07836838 n04099969 n04592741 n03891251 n02701002 n03379051
n02259212 n07715103 n03947888 n04026417 n02326432 n03637318 n01980166 n02113799 n02086240 n03903868
n02483362 n04127249 n02089973 n03017168 n02093428 n02804414 n02396427 n04418357 n02172182 n01729322
n02113978 n03787032 n02089867 n02119022 n03777754 n04238763 n02231487 n03032252 n02138441 n02104029
n03837869 n03494278 n04136333 n03794056 n03492542 n02018207 n04067472 n03930630 n03584829 n02123045
n04229816 n02100583 n03642806 n04336792 n03259280 n02116738 n02108089 n03424325 n01855672 n02090622
""".split()

TRAIN_TEST = {"train": ["train"], "test": ["test"]}
TRAIN_VAL = {"train": ["train"], "test": ["val", "test"]}


@dataclass(frozen=True)
class DatasetInfo:
    """A data set: its title, class count, default cached image size and the layouts tried, in order.

    Each layout entry is (layout reader, sub-folders of a data root to look in).
    """

    name: str
    title: str
    num_classes: int
    image_size: int | None  # cached side length; None = the native size
    layouts: list = field(default_factory=list)
    how_to: str = ""


DATASETS: dict[str, DatasetInfo] = {}


def _add(info: DatasetInfo) -> None:
    DATASETS[info.name] = info


_cifar10 = CifarPickle("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                       "batches.meta", b"label_names", b"labels")
_cifar100 = CifarPickle("cifar-100-python", ["train"], ["test"], "meta", b"fine_label_names", b"fine_labels")
_add(DatasetInfo("cifar10", "CIFAR-10", 10, None,
                 [(_cifar10, ["", "cifar10"]), (ImageFolder("cifar10", TRAIN_TEST), [""])],
                 "torchvision's `cifar-10-batches-py/` (extract cifar-10-python.tar.gz) or `cifar10/<split>/<class>/*.png|jpg`"))
_add(DatasetInfo("cifar100", "CIFAR-100", 100, None,
                 [(_cifar100, ["", "cifar100"]), (ImageFolder("cifar100", TRAIN_TEST), [""])],
                 "torchvision's `cifar-100-python/` (extract cifar-100-python.tar.gz) or `cifar100/<split>/<class>/*`"))
_add(DatasetInfo("stl10", "STL-10", 10, None,
                 [(Stl10Binary(), ["", "stl10"]), (ImageFolder("stl10", TRAIN_TEST), [""])],
                 "the official `stl10_binary/` (extract stl10_binary.tar.gz) or `stl10/<train|test>/<class>/*`"))
_add(DatasetInfo("imagenet100", "ImageNet-100", 100, 256,
                 [(ImageFolder("imagenet100", TRAIN_VAL, IMAGENET100_CLASSES), [""]),
                  (ImageFolder("imagenet", TRAIN_VAL, IMAGENET100_CLASSES), [""]),
                  (ImageFolder("ILSVRC2012", TRAIN_VAL, IMAGENET100_CLASSES), [""])],
                 "an ImageNet tree `imagenet/<train|val>/<wnid>/*.JPEG` (val sorted into class folders) or the "
                 "100-class subset as `imagenet100/<train|val>/<wnid>/*`; the 100 WordNet ids of Tian et al. are used"))
_add(DatasetInfo("imagenette", "Imagenette", 10, None,
                 [(ImageFolder("imagenette", TRAIN_VAL), [""])],
                 "`imagenette/<train|val>/<wnid>/*` (a 10-class ImageNet subset; the stand-in for ImageNet-style data here)"))
_add(DatasetInfo("synthetic", "synthetic", 10, 32, [], "generated on the fly; nothing to provide"))


class DatasetNotFoundError(FileNotFoundError):
    """A data set was not found under any data root; the message lists every path tried."""


def dataset_names() -> list[str]:
    return list(DATASETS)


def _info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; valid data sets: {', '.join(DATASETS)}")
    return DATASETS[name]


@dataclass(frozen=True)
class Located:
    layout: object
    path: Path

    @property
    def kind(self) -> str:
        return self.layout.kind


def locate(name: str, split: str = "train", data_root: str | Path | None = None) -> Located:
    """Find a split on disk (first matching layout under the first root), or raise DatasetNotFoundError."""
    info = _info(name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    roots = data_roots(data_root)
    tried: list[str] = []
    for root in roots:
        for layout, subdirs in info.layouts:
            for sub in subdirs:
                found = layout.detect(root / sub if sub else root, split)
                if found is not None:
                    return Located(layout, found)
                tried.append(f"{layout.kind}: {_describe_candidate(layout, root / sub if sub else root, split)}")
    where = "\n  ".join(tried) if tried else f"(no data root: pass --data-root DIR or set {DATA_ENV})"
    raise DatasetNotFoundError(
        f"data set {name!r} ({info.title}), split {split!r}, was not found. Looked in:\n  {where}\n"
        f"Provide it as {info.how_to}, under a folder given by --data-root DIR or the {DATA_ENV} environment "
        "variable (nothing is downloaded). See the README, section 'Data sets'.")


def _describe_candidate(layout, base: Path, split: str) -> str:
    if isinstance(layout, ImageFolder):
        return str(base / layout.folder / f"{{{','.join(layout.split_dirs[split])}}}")
    return str(base / layout.folder)


def describe(name: str, split: str, data_root: str | Path | None = None) -> tuple[Located, SplitInfo]:
    found = locate(name, split, data_root)
    return found, found.layout.describe(found.path, split)


def source_label(name: str, located: Located) -> str:
    """E.g. 'CIFAR-10 (JPEG folder)' or 'CIFAR-10 (official binary)'."""
    title = _info(name).title
    if located.kind == "official":
        return f"{title} (official release)"
    suffixes = {Path(f).suffix.lower() for f in _first_files(located.path)}
    fmt = "JPEG" if suffixes & {".jpg", ".jpeg"} else "PNG" if ".png" in suffixes else "image"
    return f"{title} ({fmt} folder)"


def _first_files(path: Path, limit: int = 3) -> list[str]:
    for d in sorted(path.iterdir()):
        if d.is_dir():
            return [f.name for f in sorted(d.iterdir())[:limit]]
    return []


def load_dataset(name: str, split: str = "train", *, data_root: str | Path | None = None,
                 store: str | Path | None = None, image_size: int | None = None, per_class: int | None = None,
                 seed: int = 0) -> ImageData:
    """Load a split as uint8 tensors, decoding it once into the cache under `<store>/cache/datasets/`.

    `image_size` overrides the data set's cached side length (images are resized, shorter side
    first, then centre-cropped); `per_class` takes a class-balanced subset drawn with `seed`.
    """
    info = _info(name)
    if name == "synthetic":
        return make_synthetic(split, per_class=per_class, image_size=image_size or 32, seed=seed)
    found = locate(name, split, data_root)
    size = image_size or info.image_size
    key = {"dataset": name, "split": split, "layout": found.kind, "path": str(found.path), "image_size": size,
           "files": found.layout.fingerprint(found.path, split)}
    folder = store_root(store) / "cache" / "datasets" / f"{name}-{split}-{key_digest(key)[:16]}"
    cached = load_or_build(folder, key, lambda allocate: found.layout.build(found.path, split, allocate, size))
    data = ImageData(name, split, torch.from_numpy(cached.images), torch.from_numpy(np.asarray(cached.labels)),
                     cached.classes, source_label(name, found), str(found.path))
    data.cache_rebuilt = cached.rebuilt  # type: ignore[attr-defined]
    return data if per_class is None else balanced_subset(data, per_class, seed)
