"""The augmentation gap (issue 34): their CP augmentations (kornia-pil: PIL-style jitter, torchvision's crop
sampler) against ours (current kornia, batched crop), measured where they matter to the attack: the expected
perturbation gradient of a trained attacker's encoder. Each side averages the gradient over `draws` random
augmentations, twice; the cosine between two means of one side is the noise floor, the cosine between the two
sides' means the gap (equal to the floor: the pipelines push delta the same way; below it: they differ).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import torch
import torch.nn.functional as Fn

from attacks.base import frozen
from attacks.contrastive_poisoning import delta_gradient
from victims.augment import contrastive_augment
from victims.recipes import build_model

from . import fixtures as F
from .e2e import DATASET, SCALE, run_reference, workdir_for
from .reference import Reference


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(Fn.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0))


def _sign_agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.sign() == b.sign()).double().mean())


def augment_gap(reference: Reference, *, images: int = 256, draws: int = 32, seed: int = 1112, data_root=None,
                store=None) -> dict:
    """Cosines and sign agreements of the mean perturbation gradients (theirs vs ours, and each side's floor),
    with the encoder and class-wise delta of their CP-C (SimCLR) run at the mini settings."""
    from ..jobs.splits import load_split
    from ..scales import get_scale

    ckpt = workdir_for("ref-cp-c-simclr", store) / "checkpoint.pt"
    if not ckpt.is_file():
        raise FileNotFoundError(f"{ckpt} is missing: make it first with `bench parity poison --attack cp-c "
                                "--algorithm simclr`")
    state = torch.load(ckpt, weights_only=False)["model"]
    data = load_split(get_scale(SCALE), DATASET, "train", data_root=data_root, store=store)
    x, y = data.images[:images], data.labels[:images]
    delta = state["delta"][y].clone()  # per sample: each image's class delta (their [-1, 1] units)
    model, _, _ = build_model("simclr", "resnet18", SCALE, 10, 32, seed=seed)
    model.load_state_dict(F.from_theirs("simclr", state))
    task = {"cl_alg": "SimCLR", "width": 0.125, "seed": seed, "draws": draws,
            "opt": {"samplewise": True, "temp": 0.5, "allow_mmt_grad": True}}
    with tempfile.TemporaryDirectory() as tmp:
        torch.save({"images": x, "labels": y, "delta": delta,
                    "state": {k: v for k, v in state.items() if k != "delta"}}, Path(tmp) / "inputs.pt")
        theirs = run_reference("augment", Path(tmp), reference, task)
    augment = contrastive_augment(32, DATASET)
    torch.manual_seed(seed)
    ours, losses = [], []
    with frozen(model):
        for _ in range(2):
            total = torch.zeros(delta.shape)
            for _ in range(draws):
                grad, loss = delta_gradient(model, augment, x, delta * 8.0, dual_branch=True)
                total += grad
                losses.append(loss)
            ours.append(total / draws)
    t, o = theirs["means"], torch.stack(ours)
    return {"images": images, "draws": draws,
            "cos_theirs_vs_ours": sum(_cos(t[i], o[j]) for i in range(2) for j in range(2)) / 4,
            "cos_floor_theirs": _cos(t[0], t[1]), "cos_floor_ours": _cos(o[0], o[1]),
            "sign_theirs_vs_ours": sum(_sign_agreement(t[i], o[j]) for i in range(2) for j in range(2)) / 4,
            "sign_floor_theirs": _sign_agreement(t[0], t[1]), "sign_floor_ours": _sign_agreement(o[0], o[1]),
            "loss_theirs": float(theirs["losses"].mean()), "loss_ours": sum(losses) / len(losses)}
