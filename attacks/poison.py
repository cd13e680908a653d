"""The Poison artifact: what an attacker releases, an integer perturbation with its spec and a checksum: int8
pixels for a bound up to 127/255 (every norm-bounded attack), int16 beyond (an unbounded transform, e.g. CUDA).

Stored as safetensors (no pickle) and verified on load: format, dtype, shape, bound, checksum, spec.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from victims.atomic import atomic_path
from victims.poisoning import Perturbation, apply_delta

from .spec import AttackSpec

FORMAT = "cp-bench-poison/1"
PERS = ("sample", "class")
REGENERATE = "delete it and regenerate the poison with `bench run`"


class PoisonError(ValueError):
    """A poison that cannot be used: malformed, tampered with, stale, or not covering the data."""


def _json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _spec_dict(spec: AttackSpec | dict) -> dict:
    return spec.to_dict() if isinstance(spec, AttackSpec) else json.loads(_json(dict(spec)))


def eps_to_pixels(eps: float) -> int:
    """The integer pixel bound of an eps in [0, 1] (8/255 -> 8)."""
    return int(round(float(eps) * 255))


def delta_dtype(eps_pixels: int) -> torch.dtype:
    """The storage of a delta bounded by `eps_pixels`: int8 up to 127, int16 up to 255 (an unbounded change)."""
    return torch.int8 if eps_pixels <= 127 else torch.int16


def checksum(delta: torch.Tensor, index: torch.Tensor, spec: dict, per: str, eps: float) -> str:
    """sha256 over the delta bytes, the index bytes and canonical JSON of (spec, per, eps, shape)."""
    h = hashlib.sha256()
    for t in (delta, index):
        h.update(memoryview(t.detach().cpu().contiguous().numpy()).cast("B"))
    h.update(_json({"spec": spec, "per": per, "eps": float(eps), "shape": list(delta.shape)}).encode())
    return h.hexdigest()


@dataclass
class Poison:
    """An integer perturbation in pixel units, (N, 3, H, W) per sample or (C, 3, H, W) per class: int8, or
    int16 where the bound is over 127 pixels (`delta_dtype`).

    `index[i]` is the sample id (position in the full training split) that row i perturbs
    (per class: arange(C), row c perturbs every image of label c)."""

    delta: torch.Tensor
    per: str
    eps: float
    spec: dict
    index: torch.Tensor
    checksum: str

    @property
    def eps_pixels(self) -> int:
        return eps_to_pixels(self.eps)

    @property
    def nbytes(self) -> int:
        """In-memory size of the delta (a quarter of the same delta in float32)."""
        return self.delta.numel() * self.delta.element_size()

    @property
    def spec_key(self) -> str:
        return hashlib.sha256(_json(self.spec).encode()).hexdigest()

    @classmethod
    def create(cls, delta: torch.Tensor, per: str, eps: float, spec: AttackSpec | dict,
               index: torch.Tensor | None = None) -> "Poison":
        """Quantise a pixel-unit delta (float: rounded; integer: as is), clamp it to the bound, store it as
        int8 (a bound up to 127/255) or int16 (up to 1: an unbounded change of the image)."""
        e = eps_to_pixels(eps)
        if not 0.0 <= float(eps) <= 1.0:
            raise ValueError(f"eps must be in [0, 1] (1: any change of the image), got {eps}")
        delta = delta.detach().cpu()
        if delta.is_floating_point():
            delta = delta.round()
        delta = delta.to(torch.int16).clamp(-e, e).to(delta_dtype(e)).contiguous()
        index = torch.arange(delta.shape[0]) if index is None else index.detach().cpu().to(torch.int64).contiguous()
        spec = _spec_dict(spec)
        p = cls(delta, per, float(eps), spec, index, checksum(delta, index, spec, per, float(eps)))
        p.verify("the new poison")
        return p

    def verify(self, where: str = "the poison") -> None:
        """Check dtype, shape against `per` and `index`, the bound and the checksum; raise PoisonError."""
        def fail(what: str) -> None:
            raise PoisonError(f"{where}: {what}; {REGENERATE}")

        d, ix = self.delta, self.index
        if self.per not in PERS:
            fail(f"per must be one of {PERS}, not {self.per!r}")
        if not 0.0 <= self.eps <= 1.0:
            fail(f"eps must be in [0, 1], got {self.eps}")
        if d.dtype != delta_dtype(self.eps_pixels):
            fail(f"delta must be {delta_dtype(self.eps_pixels)} pixel units for a bound of {self.eps_pixels} "
                 f"pixels, not {d.dtype}")
        if d.ndim != 4 or d.shape[1] != 3:
            fail(f"delta must have shape (rows, 3, H, W), not {tuple(d.shape)}")
        if ix.dtype != torch.int64 or ix.ndim != 1 or ix.numel() != d.shape[0]:
            fail(f"index must be int64 with one id per delta row ({d.shape[0]}), "
                 f"got {ix.dtype} of shape {tuple(ix.shape)}")
        if self.per == "class" and not torch.equal(ix, torch.arange(d.shape[0])):
            fail("a per-class poison's index must be arange(num_classes)")
        if self.per == "sample" and ix.numel() and (ix.min() < 0 or ix.unique().numel() != ix.numel()):
            fail("a per-sample poison's index must hold distinct non-negative sample ids")
        if checksum(d, ix, self.spec, self.per, self.eps) != self.checksum:
            fail("checksum mismatch (the delta, index or metadata changed after the poison was made)")
        if d.numel() and int(d.abs().max()) > self.eps_pixels:
            fail(f"|delta| reaches {int(d.abs().max())} pixels, over the bound eps*255 = {self.eps_pixels}")

    def save(self, path: str | os.PathLike) -> Path:
        """Write a safetensors file atomically (temp file in the same folder, fsync, rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "per": self.per, "eps": repr(float(self.eps)),
                "spec": _json(self.spec), "checksum": self.checksum}
        with atomic_path(path, fsync=True) as tmp:
            save_file({"delta": self.delta.contiguous(), "index": self.index.contiguous()}, str(tmp), metadata=meta)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, expected_spec: AttackSpec | dict | None = None) -> "Poison":
        """Read and verify a poison file; any problem raises PoisonError naming the file and the fix."""
        where = f"poison file {str(path)!r}"

        def fail(what: str) -> None:
            raise PoisonError(f"{where}: {what}; {REGENERATE}")

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if keys != {"delta", "index"}:
                    fail(f"expected tensors 'delta' and 'index', found {sorted(keys)}")
                delta, index = f.get_tensor("delta"), f.get_tensor("index")
        except PoisonError:
            raise
        except Exception as e:  # unreadable, truncated, not safetensors
            raise PoisonError(f"{where}: cannot be read as safetensors ({e}); {REGENERATE}") from e
        if meta.get("format") != FORMAT:
            fail(f"format is {meta.get('format')!r}, expected {FORMAT!r}")
        missing = [k for k in ("per", "eps", "spec", "checksum") if k not in meta]
        if missing:
            fail(f"metadata lacks {missing}")
        try:
            eps, spec = float(meta["eps"]), json.loads(meta["spec"])
        except ValueError as e:
            fail(f"unreadable metadata ({e})")
        if not isinstance(spec, dict):
            fail("the spec metadata is not a JSON object")
        p = cls(delta, meta["per"], eps, spec, index, meta["checksum"])
        p.verify(where)
        if expected_spec is not None and _json(_spec_dict(expected_spec)) != _json(spec):
            fail(f"it holds the poison of spec {_json(spec)}, but {_json(_spec_dict(expected_spec))} was "
                 "expected (stale or misplaced file)")
        return p

    def perturbation_for(self, index: torch.Tensor) -> Perturbation:
        """The perturbation aligned with a data set given by its sample ids: per sample, row j perturbs the
        sample whose id is index[j] (PoisonError if an id is not covered); per class, the class deltas."""
        if self.per == "class":
            return Perturbation(self.delta, "class")
        index = torch.as_tensor(index, dtype=torch.int64).cpu().reshape(-1)
        if torch.equal(index, self.index):
            return Perturbation(self.delta, "sample")
        ids, order = self.index.sort()
        pos = torch.searchsorted(ids, index).clamp_(max=max(ids.numel() - 1, 0))
        ok = ids[pos] == index if ids.numel() else torch.zeros_like(index, dtype=torch.bool)
        if not bool(ok.all()):
            bad = index[~ok]
            raise PoisonError(
                f"the poison of spec {_json(self.spec)} covers {ids.numel()} samples but not {bad.numel()} of the "
                f"requested ids (first: {bad[:5].tolist()}); it was made for other data: {REGENERATE}")
        return Perturbation(self.delta[order[pos]], "sample")

    def apply(self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Poisoned uint8 images: images (N, 3, H, W) with sample ids `index` and labels `labels`."""
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be uint8, not {images.dtype}")
        if images.shape[1:] != self.delta.shape[1:]:
            raise PoisonError(f"images of shape {tuple(images.shape[1:])} do not match the poison's "
                              f"{tuple(self.delta.shape[1:])}; {REGENERATE}")
        labels = torch.as_tensor(labels, dtype=torch.int64).cpu()
        if len(index) != len(images) or len(labels) != len(images):
            raise ValueError(f"{len(images)} images, {len(labels)} labels and {len(index)} ids do not align")
        if self.per == "class" and labels.numel() and (labels.min() < 0 or labels.max() >= self.delta.shape[0]):
            raise PoisonError(f"labels outside 0..{self.delta.shape[0] - 1} for a per-class poison; {REGENERATE}")
        p = self.perturbation_for(index)
        return apply_delta(images, p.rows(torch.arange(len(images)), labels))
