"""`bench import-poison`: a poison made by other code, verified and stored as the attack `ext:NAME`.

The file is read without unpickling anything (NumPy with allow_pickle=False, safetensors, torch with
weights_only=True, or a folder of images), interpreted against the clean split of the data set at the
scale (its layout, units, per sample or per class, its order; at a scale that trains on a subset, a per-sample
poison may cover the whole split, as most code releases them, and the subset's rows are kept), checked (shape,
finite values, the eps bound, the order) and only then stored where `poison_store.poison_path` looks for the
poison of `external_spec(NAME, dataset, scale)`, with a small JSON report beside it. See docs/import.md.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from attacks import Poison, PoisonError
from attacks.external import external_spec
from attacks.poison import eps_to_pixels

from ..data import ImageData
from ..data.layouts import IMAGE_SUFFIXES, _decode
from ..records import now, write_json_atomic
from ..scales import get_scale
from .poison_store import poison_path
from .splits import load_split, whole_split_size

UNITS = ("auto", "0-1", "0-255")
CONTENTS = ("auto", "delta", "images")
PERS = ("auto", "sample", "class")
DELTA_KEYS = ("delta", "perturbation", "perturbations", "noise")
IMAGE_KEYS = ("images", "poisoned", "poisoned_images")
SIDE_KEYS = ("index", "labels")
FORMATS = ".npy, .npz, .safetensors, .pt/.pth (tensors only), or a folder <class>/<image> of poisoned images"

OTHER_SAMPLES = ("a poison over other samples, or in another order, than the split's (or, where this scale takes a "
                 "subset, the whole split's in the data set's order) needs their ids: add an 'index' array "
                 "(positions in the full split) to an .npz or .safetensors")


class ImportPoisonError(ValueError):
    """A file that cannot be imported as a poison; the message names the problem and the way out."""


@dataclass
class Source:
    """What a file holds: one array, how its key names it, and the optional sample ids and labels."""

    array: np.ndarray
    format: str
    key: str | None = None
    index: np.ndarray | None = None
    labels: np.ndarray | None = None
    content: str | None = None  # "delta" or "images" where the key or the format says so
    aligned: bool = False  # rows already in the split's order (an image folder)


@dataclass
class Imported:
    """The verified poison and what was assumed to read it."""

    poison: Poison
    assumed: dict
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- reading

def file_sha256(path: Path) -> str:
    """sha256 of a file, or of a folder (its files' relative paths and bytes, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _pick(arrays: dict[str, np.ndarray], key: str | None, where: str) -> Source:
    """The poison's array among several (by --key, a known name, or the only one besides index/labels)."""
    if key is not None:
        if key not in arrays:
            raise ImportPoisonError(f"{where} has no array {key!r}; it holds {sorted(arrays)}")
    else:
        known = [k for k in DELTA_KEYS + IMAGE_KEYS if k in arrays]
        rest = [k for k in arrays if k not in SIDE_KEYS]
        if len(known) == 1:
            key = known[0]
        elif len(rest) == 1:
            key = rest[0]
        else:
            raise ImportPoisonError(f"{where} holds arrays {sorted(arrays)}: name the poison's with --key "
                                    f"(or call it one of {', '.join(DELTA_KEYS + IMAGE_KEYS)})")
    content = "delta" if key in DELTA_KEYS else "images" if key in IMAGE_KEYS else None
    return Source(arrays[key], "", key, arrays.get("index"), arrays.get("labels"), content)


def _numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    return (t.float() if t.dtype in (torch.bfloat16, torch.float16) else t).numpy()


def read_folder(path: Path, data: ImageData) -> Source:
    """Poisoned images as `<path>/<class>/<image>`: class folders named as the split's classes; within a class,
    files sorted by name are that class's samples in the split's order."""
    folders = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if folders != sorted(data.classes):
        raise ImportPoisonError(f"image folder {path}: its class folders {folders[:5]}{' ...' * (len(folders) > 5)} "
                                f"are not the classes of the split {sorted(data.classes)[:5]}"
                                f"{' ...' * (len(data.classes) > 5)}: use one sub-folder per class, named as in "
                                "`bench datasets`' data")
    out = np.empty(tuple(data.images.shape), dtype=np.uint8)
    for c, name in enumerate(data.classes):
        files = sorted(f for f in (path / name).iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        positions = torch.nonzero(data.labels == c).flatten().tolist()
        if len(files) != len(positions):
            raise ImportPoisonError(
                f"image folder {path}: class {name!r} has {len(files)} images but the split has {len(positions)}: "
                "its order cannot be matched to the split (each class folder must hold that class's images, "
                "named so that they sort in the data set's order)")
        for pos, f in zip(positions, files):
            img = _decode(str(f), None)
            if img.shape != out.shape[1:]:
                raise ImportPoisonError(f"{f} is {img.shape[2]}x{img.shape[1]}, the split's images are "
                                        f"{out.shape[3]}x{out.shape[2]}: a poison is not resized")
            out[pos] = img
    return Source(out, "image folder", content="images", aligned=True)


def read_source(path: Path, data: ImageData, key: str | None = None) -> Source:
    """Read `path` by its suffix (or as an image folder) without unpickling anything."""
    if path.is_dir():
        return read_folder(path, data)
    if not path.is_file():
        raise ImportPoisonError(f"{path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            source = Source(np.load(path, allow_pickle=False), "npy")
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                source = _pick({k: z[k] for k in z.files}, key, str(path))
        elif suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                source = _pick({k: _numpy(f.get_tensor(k)) for k in f.keys()}, key, str(path))
        elif suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, torch.Tensor):
                source = Source(_numpy(obj), "")
            elif isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
                source = _pick({str(k): _numpy(v) for k, v in obj.items()}, key, str(path))
            else:
                raise ImportPoisonError(f"{path} holds a {type(obj).__name__}, not a tensor or a dict of tensors")
        else:
            raise ImportPoisonError(f"{path}: unknown format {suffix or '(no suffix)'!r}; give {FORMATS} "
                                    "(pickles are never read)")
    except ImportPoisonError:
        raise
    except Exception as e:  # unreadable, truncated, pickled objects refused by allow_pickle/weights_only
        raise ImportPoisonError(f"{path} cannot be read as {suffix[1:]} without unpickling ({e}); save plain "
                                f"arrays or tensors ({FORMATS})") from e
    source.format = source.format or suffix[1:]
    return source


# ---------------------------------------------------------------------------------------------- interpreting

def _content(source: Source, wanted: str) -> str:
    if wanted != "auto":
        return wanted
    if source.content:
        return source.content
    a = source.array
    if a.dtype == np.uint8:
        return "images"
    if a.dtype.kind in "if" and a.size and np.nanmin(a) < 0:
        return "delta"
    if a.dtype.kind == "i":
        return "delta"  # a signed type: a perturbation
    raise ImportPoisonError("cannot tell whether the array holds perturbations or poisoned images (no negative "
                            "value, not uint8): pass --content delta or --content images")


def _channels_first(a: np.ndarray, hw: tuple[int, int], expected: str) -> tuple[np.ndarray, str]:
    if a.ndim == 4 and a.shape[1:] == (3, *hw):
        return a, "(rows, 3, H, W)"
    if a.ndim == 4 and a.shape[1:] == (*hw, 3):
        return a.transpose(0, 3, 1, 2), "(rows, H, W, 3)"
    raise ImportPoisonError(f"shape {a.shape} does not match the split: expected {expected}")


def _units(a: np.ndarray, content: str, wanted: str, eps: float) -> str:
    if wanted != "auto":
        return wanted
    if a.dtype.kind in "iub":
        return "0-255"
    peak = float(np.abs(a).max()) if a.size else 0.0
    if content == "images":
        return "0-255" if peak > 1.0 else "0-1"
    if peak >= 1.0 or peak == 0.0:
        return "0-255"
    if peak <= eps + 0.5 / 255:
        return "0-1"
    raise ImportPoisonError(f"cannot tell the units: the largest |value| {peak:.4g} is above eps = {eps:.4g} in "
                            "[0, 1] units but below one pixel level in [0, 255] units: pass --units 0-1 or "
                            "--units 0-255")


def _pixels(a: np.ndarray, units: str) -> torch.Tensor:
    """Integer pixel units (int32), rounded."""
    x = torch.from_numpy(np.ascontiguousarray(a))
    if x.is_floating_point():
        x = (x.double() * (255.0 if units == "0-1" else 1.0)).round()
    elif units == "0-1":
        raise ImportPoisonError("an integer array cannot be in [0, 1] units: drop --units 0-1")
    return x.to(torch.int32)


def _align(source: Source, rows: int, data: ImageData, whole: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """Positions in the array of the split's samples, in the split's order (ids matched where given; `whole`: the
    size of the whole split that the scale's subset is drawn from, whose rows in order cover it)."""
    notes = []
    if source.index is None:
        if rows == len(data):
            return torch.arange(rows), notes
        if whole is not None and rows == whole:
            notes.append(f"the {rows:,} rows cover the whole split in the data set's order: kept the {len(data):,} "
                         "rows of the samples this scale trains on (their positions in the split)")
            return data.index.clone(), notes
        whole_text = f" nor the whole split's {whole}" if whole is not None else ""
        raise ImportPoisonError(f"{rows} rows do not match the split's {len(data)} samples{whole_text}; "
                                f"{OTHER_SAMPLES}")
    ids = np.asarray(source.index)
    if ids.ndim != 1 or ids.shape[0] != rows or ids.dtype.kind not in "iu":
        raise ImportPoisonError(f"'index' must be integer sample ids, one per row ({rows}), got {ids.dtype} "
                                f"{ids.shape}")
    ids_t = torch.from_numpy(ids.astype(np.int64))
    if ids_t.unique().numel() != rows:
        raise ImportPoisonError("'index' repeats sample ids: the poison's order cannot be matched to the split")
    order = ids_t.argsort()
    sorted_ids = ids_t[order]
    pos = torch.searchsorted(sorted_ids, data.index).clamp(max=rows - 1)
    found = sorted_ids[pos] == data.index
    if not bool(found.all()):
        missing = data.index[~found]
        raise ImportPoisonError(f"'index' lacks {missing.numel()} of the split's {len(data)} sample ids (first: "
                                f"{missing[:5].tolist()}): the poison's order cannot be matched to the split")
    if rows > len(data):
        notes.append(f"kept the {len(data)} rows whose ids are in the split, of {rows}")
    return order[pos], notes


def _check_labels(source: Source, rows: torch.Tensor, data: ImageData) -> None:
    if source.labels is None:
        return
    labels = np.asarray(source.labels)
    if labels.ndim != 1 or labels.shape[0] != source.array.shape[0] or labels.dtype.kind not in "iu":
        raise ImportPoisonError(f"'labels' must be integer labels, one per row, got {labels.dtype} {labels.shape}")
    wrong = torch.from_numpy(labels.astype(np.int64))[rows] != data.labels
    if bool(wrong.any()):
        raise ImportPoisonError(f"'labels' disagree with the split's labels at {int(wrong.sum())} of {len(data)} "
                                "samples: the poison's order cannot be matched to the split")


def _check_bound(delta: torch.Tensor, eps: float, content: str) -> None:
    e = eps_to_pixels(eps)
    peak = delta.flatten(1).abs().amax(dim=1) if delta.numel() else torch.zeros(0)
    over = peak > e
    if bool(over.any()):
        n, total = int(over.sum()), len(peak)
        hint = ""
        if content == "images" and n > total // 2:
            hint = ("; most images differ from the clean image at the same position: if the images are not in the "
                    "data set's order, put them in it (or give their ids as 'index')")
        raise ImportPoisonError(
            f"the perturbation's L-inf norm is above eps = {e}/255 in {n} of {total} rows, by up to "
            f"{int(peak.max()) - e}/255 (largest |delta| {int(peak.max())}/255){hint}; pass the eps it was made "
            "with (--eps) or clip it")


def interpret(source: Source, data: ImageData, eps: float, *, units: str = "auto", content: str = "auto",
              per: str = "auto", whole: int | None = None) -> tuple[torch.Tensor, str, torch.Tensor, dict, list[str]]:
    """(int delta in pixels, per, index, what was assumed, notes) for `source` on the clean split `data`; `whole`:
    the size of the whole split where `data` is a subset of it (a per-sample poison may then cover it all)."""
    a = source.array
    if a.dtype.kind not in "iuf":
        raise ImportPoisonError(f"the array's dtype {a.dtype} is not numeric")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise ImportPoisonError(f"{int((~np.isfinite(a)).sum())} values are NaN or inf")
    content = _content(source, content)
    hw = tuple(data.images.shape[2:])
    n, c = len(data), data.num_classes
    expected = f"({n}, 3, {hw[0]}, {hw[1]}) or ({n}, {hw[0]}, {hw[1]}, 3) per sample" + \
        (f" ({whole} for the whole split, in the data set's order)" if whole is not None else "") + \
        ("" if content == "images" else f", ({c}, 3, {hw[0]}, {hw[1]}) or ({c}, {hw[0]}, {hw[1]}, 3) per class")
    a, layout = _channels_first(a, hw, expected)
    rows = a.shape[0]
    if content == "images" or per == "sample":
        per = "sample"
    elif per == "auto":
        if source.index is not None or (rows in (n, whole) and rows != c):
            per = "sample"
        elif rows == c and rows != n:
            per = "class"
        elif rows == n:
            raise ImportPoisonError(f"{rows} rows fit both one per sample and one per class: pass --per sample or "
                                    "--per class")
        else:
            raise ImportPoisonError(f"{rows} rows do not match the split: expected {expected}; {OTHER_SAMPLES}")
    if per == "class" and rows != c:
        raise ImportPoisonError(f"a per-class poison needs {c} rows (the split's classes), got {rows}")
    units = _units(a, content, units, eps)
    notes: list[str] = []
    if per == "class":
        delta, index = _pixels(a, units), torch.arange(c)
    else:
        take, notes = (torch.arange(rows), []) if source.aligned else _align(source, rows, data, whole)
        _check_labels(source, take, data)
        x = _pixels(a[take.numpy()], units)  # the rows kept, in the split's order
        if content == "images":
            if x.numel() and (int(x.min()) < 0 or int(x.max()) > 255):
                raise ImportPoisonError(f"poisoned images must lie in 0..255 (in {units} units), found "
                                        f"{int(x.min())}..{int(x.max())}: check --units")
            x = x - data.images.to(torch.int32)
        delta, index = x, data.index.clone()
    _check_bound(delta, eps, content)
    assumed = {"content": content, "units": units, "layout": layout, "per": per}
    return delta, per, index, assumed, notes


# ---------------------------------------------------------------------------------------------- storing

def import_poison(name: str, path: str | os.PathLike, *, dataset: str, scale: str, eps: float = 8 / 255,
                  split: str = "train", units: str = "auto", content: str = "auto", per: str = "auto",
                  key: str | None = None, replace: bool = False, data_root=None, store=None) -> Imported:
    """Verify the poison in `path` against the clean `split` of `dataset` at `scale` and store it as the poison
    of `external_spec(name, dataset, scale)`; nothing is written unless every check passes."""
    if split != "train":
        raise ImportPoisonError(f"split {split!r}: victims train on the 'train' split, so a poison must cover it")
    if not 0.0 < eps <= 127 / 255:
        raise ImportPoisonError(f"eps must be in (0, 127/255] (int8 pixel units), got {eps}")
    spec = external_spec(name, dataset, scale)  # ExternalNameError for a name that cannot name a file
    path = Path(path).expanduser().resolve()
    data = load_split(get_scale(scale), dataset, split, data_root=data_root, store=store)
    source = read_source(path, data, key)
    whole = whole_split_size(get_scale(scale), dataset, split, data_root=data_root)
    delta, per, index, assumed, notes = interpret(source, data, eps, units=units, content=content, per=per,
                                                  whole=whole)
    poison = Poison.create(delta, per, eps, spec, index)
    target = poison_path(spec, store)
    if target.is_file() and not replace:
        try:
            old = Poison.load(target, expected_spec=spec)
        except PoisonError:
            old = None
        if old is not None and old.checksum == poison.checksum:
            return Imported(old, assumed, notes + [f"already imported, unchanged: {target}"])
        raise ImportPoisonError(f"{spec.attack} for {dataset} at the {scale} scale is already imported ({target}) "
                                "with other contents: pick another NAME, or pass --replace (its victims then train "
                                "again)")
    assumed.update(format=source.format, key=source.key, eps=eps)
    poison.save(target)
    write_json_atomic(target.with_suffix(".json"), {
        "kind": "poison", "external": True, "spec": spec.to_dict(), "key": spec.key, "checksum": poison.checksum,
        "per": per, "eps": eps, "source": {"path": str(path), "sha256": file_sha256(path)}, "assumed": assumed,
        "notes": notes, "data": f"{data.source}, {len(data)} images", "created": now()})
    return Imported(poison, assumed, notes + [f"stored {target}"])


def import_command(name: str, path: str | os.PathLike, *, dataset: str, scale: str, **options) -> int:
    """`bench import-poison`: `import_poison` (the same options), then what it assumed and stored."""
    imported = import_poison(name, path, dataset=dataset, scale=scale, **options)
    p, a = imported.poison, imported.assumed
    print(f"read {path} as {a['content']} in {a['units']} units, laid out {a['layout']}, one per {a['per']}"
          " (override with --content, --units, --per)")
    for note in imported.notes:
        print(f"  {note}")
    print(f"imported {p.spec['attack']}: {tuple(p.delta.shape)} int8 poison for {dataset} at the {scale} "
          f"scale, eps {p.eps_pixels}/255, checksum {p.checksum[:16]}; use it as `--attack {p.spec['attack']}` or "
          f"`bench run --grid effectiveness --rows {p.spec['attack']}`")
    return 0
