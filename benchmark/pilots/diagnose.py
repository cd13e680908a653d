"""Does a shortcut form? Numbers, not pictures, for a CP poison (issue 39, "Diagnose CP-C"):

- `attacker_losses`: the attacker's own encoder (its final state in the poison's work folder), its contrastive
  loss on two views of the poisoned images against two views of the clean ones (the same view draws): a
  shortcut makes the poisoned loss the lower one;
- `augmented_separability`: how linearly the labels can be read from the perturbation as the victim sees it,
  augment(x + delta) - augment(x) with the same draw, and from whole poisoned views against clean ones (a
  class-wise shortcut that survives augmentation is linearly separable; chance is 100 / classes);
- `victim_losses`: the same for the poisoned victim (its final checkpoint): poisoned against clean data;
- `victim_numbers`: from the records, the victim's final training loss, alignment and uniformity (Wang &
  Isola) on its own training data, poisoned against the clean victim's.
"""
from __future__ import annotations

from pathlib import Path

import torch

from attacks import Poison
from attacks.spec import AttackSpec
from victims.augment import contrastive_augment, to_float
from victims.recipes import build_model
from victims.train import load_checkpoint

from ..data import ImageData
from ..jobs.poison_store import poison_path
from ..jobs.victim import victim_checkpoint
from ..report.figures import linear_separability


def poisoned_images(poison: Poison, data: ImageData) -> torch.Tensor:
    """The released poison on `data`: uint8 images, as a victim receives them."""
    return poison.apply(data.images, data.labels, data.index)


def sample(data: ImageData, count: int, seed: int = 0) -> ImageData:
    """A fixed random subset of `count` samples (all when fewer)."""
    if count >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    return data.subset(order.sort().values)


def paired_views(augment: torch.nn.Module, first: torch.Tensor, second: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """One augmentation draw applied to two batches of the same images (kornia replays its parameters)."""
    a = augment(first)
    b = augment.augs(to_float(second), params=augment.augs._params)
    return a, b


@torch.no_grad()
def paired_losses(model: torch.nn.Module, poison: Poison, data: ImageData, *, dataset: str = "cifar10",
                  batches: int = 8, batch_size: int = 256, seed: int = 0) -> dict[str, float]:
    """A trained algorithm (eval mode): its mean contrastive loss on two views of the poisoned images and on
    two views of the clean ones, over the same images and view draws."""
    model.eval()
    augment = contrastive_augment(data.image_size, dataset)
    subset = sample(data, batches * batch_size, seed)
    dirty = poisoned_images(poison, subset)
    losses: dict[str, list[float]] = {"poisoned": [], "clean": []}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(subset), batch_size):
            chunk = slice(start, start + batch_size)
            p1, c1 = paired_views(augment, dirty[chunk], subset.images[chunk])
            p2, c2 = paired_views(augment, dirty[chunk], subset.images[chunk])
            losses["poisoned"].append(float(model.pair_loss(p1, p2)))
            losses["clean"].append(float(model.pair_loss(c1, c2)))
    return {name: round(sum(values) / len(values), 4) for name, values in losses.items()}


def attacker_losses(spec: AttackSpec, poison: Poison, data: ImageData, *, store=None, **options
                    ) -> dict[str, float] | None:
    """`paired_losses` of the attacker's final encoder (its state in the poison's work folder; eval mode, as
    in its perturbation turns). None when that state is gone."""
    state = load_checkpoint(poison_path(spec, store).with_suffix(".work") / "state.pt")
    if state is None or state.get("key") != spec.key:
        return None
    model, _, _ = build_model(spec.algorithm, spec.arch or "resnet18", spec.scale, data.num_classes,
                              data.image_size, seed=spec.seed)
    model.load_state_dict(state["trainer"]["algorithm"])
    return paired_losses(model, poison, data, dataset=spec.dataset, **options)


def victim_losses(record: dict, poison: Poison, data: ImageData, *, store=None,
                  **options) -> dict[str, float] | None:
    """`paired_losses` of a poisoned victim (its final checkpoint): does it fit the poisoned data better than
    the clean data it stands for? None when its checkpoint is gone."""
    path = victim_checkpoint(record["key"], (record.get("poison") or {}).get("checksum"), store)
    state = load_checkpoint(path)
    if state is None:
        return None
    victim = record["victim"]
    model, _, _ = build_model(victim["algorithm"], victim["arch"], record["scale"], data.num_classes,
                              input_size=data.image_size)
    model.load_state_dict(state["trainer"]["algorithm"])
    return paired_losses(model, poison, data, dataset=victim["dataset"], **options)


@torch.no_grad()
def augmented_separability(poison: Poison, data: ImageData, *, count: int = 4000, seed: int = 0,
                           dataset: str = "cifar10") -> dict[str, float]:
    """Held-out accuracy (%) of a linear classifier reading the label from (a) the augmented perturbation
    augment(x + delta) - augment(x), (b) poisoned views, (c) clean views (same draws); `gain` is (b) - (c)."""
    subset = sample(data, count, seed)
    augment = contrastive_augment(data.image_size, dataset)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        views, clean = paired_views(augment, poisoned_images(poison, subset), subset.images)
    delta = linear_separability((views - clean).flatten(1), subset.labels, seed=seed)
    dirty_views = linear_separability(views.flatten(1), subset.labels, seed=seed)
    clean_views = linear_separability(clean.flatten(1), subset.labels, seed=seed)
    return {"augmented_delta": round(delta, 2), "poisoned_views": round(dirty_views, 2),
            "clean_views": round(clean_views, 2), "gain": round(dirty_views - clean_views, 2),
            "chance": round(100 / data.num_classes, 2)}


def victim_numbers(record: dict | None) -> dict[str, float] | None:
    """The victim's last epoch: training loss, alignment and uniformity (None without a record)."""
    if not record or not record.get("history"):
        return None
    last = record["history"][-1]
    return {k: last[k] for k in ("loss", "alignment", "uniformity") if k in last}


def workdir_state_exists(spec: AttackSpec, store=None) -> bool:
    return Path(poison_path(spec, store).with_suffix(".work") / "state.pt").is_file()
