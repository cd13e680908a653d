"""What a victim trains on when it defends itself or only part of its data is poisoned (issue 35).

- Partial poisoning: the poison perturbs only a seeded class-balanced `poison_ratio` share of the training
  set (drawn with the poison's seed: the attacker chooses which images it releases poisoned).
- A data defense (`acts_on = "data"`) transforms the released training images once; the result is cached in
  the store (`<store>/defended/<scale>/`) like a poison, keyed by the defense's parameters and the exact
  images it was given (the poison's checksum, the ratio, the data's ids), and reused by every victim of it.
- A training defense (`acts_on = "training"`) hands the training loop a hook on its views.
"""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from attacks.spec import canonical_key
from defenses import DEFENSES, Defense, defense_params
from victims.atomic import atomic_path
from victims.poisoning import Perturbation, apply_delta, balanced_mask
from victims.train import ViewHook

from ..data import ImageData
from ..paths import store_root
from ..specs import VictimSpec
from .splits import describe

CHUNK = 4096  # images transformed at a time


def partial(perturbation: Perturbation, spec: VictimSpec, train: ImageData) -> Perturbation:
    """The perturbation restricted to the poisoned share of `train` (unchanged at ratio 1)."""
    if spec.poison_ratio == 1:
        return perturbation
    assert spec.poison is not None
    return replace(perturbation, mask=balanced_mask(train.labels, spec.poison_ratio, spec.poison.seed))


def defended_path(spec: VictimSpec, key: str, store=None) -> Path:
    assert spec.defense is not None
    return store_root(store) / "defended" / spec.scale / f"{spec.defense.name}-{key[:20]}.safetensors"


def defended_images(spec: VictimSpec, defense: Defense, params: dict, train: ImageData,
                    perturbation: Perturbation | None, poison_checksum: str | None, *, store=None,
                    progress: bool = True) -> tuple[torch.Tensor, dict]:
    """The released training images (poisoned where `perturbation` says) after the data defense; computed
    once and cached. Returns the images and what the record keeps (parameters, cache file, seconds)."""
    assert spec.defense is not None
    key = canonical_key({"defense": spec.defense.name, "params": params, "data": describe(train),
                         "ids": canonical_key(train.index.tolist()), "poison": poison_checksum,
                         "ratio": spec.poison_ratio, "seed": spec.poison.seed if spec.poison else None})
    path = defended_path(spec, key, store)
    info = {"name": spec.defense.name, "params": params, "acts_on": defense.acts_on, "file": path.name}
    if path.is_file():
        images = load_file(path)["images"]
        if images.shape == train.images.shape and images.dtype == torch.uint8:
            return images, {**info, "cached": True, "seconds": None}
    started = time.perf_counter()
    out = torch.empty_like(train.images)
    positions = torch.arange(len(train))
    for start in range(0, len(train), CHUNK):
        chunk = slice(start, start + CHUNK)
        images = train.images[chunk]
        if perturbation is not None:
            images = apply_delta(images, perturbation.rows(positions[chunk], train.labels[chunk]))
        out[chunk] = defense.transform(images, params, seed=spec.seed)
    seconds = round(time.perf_counter() - started, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file({"images": out.contiguous()}, str(tmp))
    if progress:
        print(f"defense {spec.defense.label} applied to {len(train)} images in {seconds} s: {path}")
    return out, {**info, "cached": False, "seconds": seconds}


def training_hook(spec: VictimSpec, defense: Defense, params: dict) -> tuple[ViewHook, dict]:
    """A training defense's hook on each step's views, and what the record keeps."""
    assert spec.defense is not None
    hook = defense.view_hook(params, seed=spec.seed, dataset=spec.dataset)
    return hook, {"name": spec.defense.name, "params": params, "acts_on": defense.acts_on}


def resolve(spec: VictimSpec) -> tuple[Defense, dict] | None:
    """The victim's defense and its parameters at its scale (None without a defense)."""
    if spec.defense is None or spec.defense.is_none:
        return None
    return DEFENSES.get(spec.defense.name)(), defense_params(spec.defense, spec.scale)
