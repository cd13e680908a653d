"""Batched, on-device, differentiable augmentation pipelines (kornia).

Every pipeline takes a batch ``(B, 3, H, W)``, uint8 in 0..255 or float in [0, 1], and returns a
normalised float batch ``(B, 3, size, size)`` on the input's device; gradients flow back to a float
input, so attacks can optimise the images through the augmentations. The colour jitter is
``kornia.augmentation.ColorJitter`` -- torchvision/PIL semantics, see docs/augmentations.md.
"""
from __future__ import annotations

import kornia.augmentation as K
import torch
from torch import Tensor, nn

from victims.normalization import normalization_for

__all__ = ["to_float", "contrastive_augment", "probe_augment", "supervised_augment", "eval_transform", "solo_view",
           "PerView", "strength_augment"]


def to_float(images: Tensor) -> Tensor:
    """uint8 -> float in [0, 1] (``/255`` on the batch's device); floating tensors pass through."""
    if images.dtype == torch.uint8:
        return images.to(torch.get_default_dtype()) / 255.0
    if not images.is_floating_point():
        raise TypeError(f"expected uint8 or floating images, got {images.dtype}")
    return images


def _check(images: Tensor) -> Tensor:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected a batch of shape (B, 3, H, W), got {tuple(images.shape)}")
    return to_float(images)


class BatchedResizedCrop(K.RandomResizedCrop):
    """kornia's RandomResizedCrop (its box sampling, parameters and inverse) with the crop-and-resize done
    for the whole batch in one differentiable `grid_sample`: kornia's default "slice" mode crops and resizes
    image by image (25 ms of a 37 ms view at batch 512 on an H100, benchmark/scripts/gpu_profile.py), and its
    "resample" mode maps box corners to pixel centres (up to 0.035 off torchvision). Here the output equals
    torchvision's crop + bilinear resize (half-pixel centres, edges clamped to the box)."""

    def apply_transform(self, input: Tensor, params: dict, flags: dict, transform: Tensor | None = None) -> Tensor:
        b, _, h, w = input.shape
        box = params["src"].to(device=input.device, dtype=input.dtype)  # (B, 4, 2) corners, inclusive pixels
        x0, y0, x1, y1 = box[:, 0, 0], box[:, 0, 1], box[:, 2, 0], box[:, 2, 1]
        out_h, out_w = flags["size"]
        # output pixel centres -> input pixel coordinates (torchvision: (i + 0.5) * crop / out - 0.5 + offset),
        # clamped to the box's first and last pixel centres, then normalised for align_corners=False
        i = torch.arange(out_w, device=input.device, dtype=input.dtype)
        j = torch.arange(out_h, device=input.device, dtype=input.dtype)
        gx = x0[:, None] + ((i[None] + 0.5) * (x1 - x0 + 1)[:, None] / out_w - 0.5)
        gy = y0[:, None] + ((j[None] + 0.5) * (y1 - y0 + 1)[:, None] / out_h - 0.5)
        gx = torch.maximum(torch.minimum(gx, x1[:, None]), x0[:, None]).mul(2 / w).add((1 - w) / w)
        gy = torch.maximum(torch.minimum(gy, y1[:, None]), y0[:, None]).mul(2 / h).add((1 - h) / h)
        grid = torch.stack([gx[:, None, :].expand(b, out_h, out_w), gy[:, :, None].expand(b, out_h, out_w)], -1)
        return torch.nn.functional.grid_sample(input, grid, mode="bilinear", padding_mode="border",
                                               align_corners=False)


def _rrc(size: int, scale: tuple[float, float]) -> K.RandomResizedCrop:
    # align_corners=False: torchvision/PIL's pixel-centre resampling convention (kornia defaults to True).
    return BatchedResizedCrop((size, size), scale=scale, align_corners=False)


def _normalize(dataset: str) -> K.Normalize:
    mean, std = normalization_for(dataset)
    return K.Normalize(mean=torch.tensor(mean), std=torch.tensor(std))


class _Pipeline(nn.Module):
    """``to_float`` followed by a kornia ``AugmentationSequential``; fresh random parameters per call."""

    def __init__(self, *augs: nn.Module) -> None:
        super().__init__()
        self.augs = K.AugmentationSequential(*augs)

    def forward(self, images: Tensor) -> Tensor:
        return self.augs(_check(images))


def contrastive_augment(size: int, dataset: str) -> nn.Module:
    """The paper's SimCLR-style view; call twice on one batch for two independent views."""
    return _Pipeline(
        _rrc(size, (0.2, 1.0)),
        K.RandomHorizontalFlip(),
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8),  # torchvision semantics, not ColorJiggle
        K.RandomGrayscale(p=0.2),
        _normalize(dataset),
    )


def solo_view(size: int, dataset: str, *, saturation: float = 0.4, blur_p: float = 0.0,
              solarize_p: float = 0.0, crop_scale: tuple[float, float] = (0.08, 1.0)) -> nn.Module:
    """One view of solo-learn's CIFAR pipelines (solo/data/pretrain_dataloader.py:218-266, the YAMLs of
    scripts/pretrain/cifar/augmentations/): crop (0.08..1) -> jitter(0.4, 0.4, `saturation`, 0.1) p 0.8 ->
    grayscale p 0.2 -> Gaussian blur (sigma 0.1..2) p `blur_p` -> solarize p `solarize_p` -> flip -> normalise.
    Solarisation inverts pixels >= 0.5, which on uint8 images is PIL's default threshold 128 exactly; the crop
    resamples bilinearly where solo-learn's is bicubic, and the blur is a true Gaussian where PIL's is its
    box approximation (docs/fidelity.md)."""
    augs: list[nn.Module] = [_rrc(size, crop_scale), K.ColorJitter(0.4, 0.4, saturation, 0.1, p=0.8),
                             K.RandomGrayscale(p=0.2)]
    if blur_p > 0:
        augs.append(K.RandomGaussianBlur((13, 13), (0.1, 2.0), border_type="replicate", p=blur_p))
    if solarize_p > 0:
        augs.append(K.RandomSolarize(0.0, 0.0, p=solarize_p))
    return _Pipeline(*augs, K.RandomHorizontalFlip(), _normalize(dataset))


class PerView(nn.Module):
    """A different pipeline for each view (solo-learn's asymmetric augmentations): called, as the trainer
    calls a view pipeline, on the batch repeated once per view, it gives the k-th repeat the k-th pipeline."""

    def __init__(self, *pipelines: nn.Module) -> None:
        super().__init__()
        self.pipelines = nn.ModuleList(pipelines)

    def forward(self, images: Tensor) -> Tensor:
        k = len(self.pipelines)
        if images.shape[0] % k:
            raise ValueError(f"expected the batch repeated once per view ({k} views), got {images.shape[0]} images")
        return torch.cat([p(part) for p, part in zip(self.pipelines, images.chunk(k))])


def strength_augment(size: int, dataset: str, strength: float) -> nn.Module:
    """AUE/AAP's contrastive-like augmentation of strength s (EhanW/AUE-AAP utils.py:10-23, `Augment.aug_cl`):
    crop (max(1 - 0.9 s, 0.05)..1) -> flip -> jitter(0.4 s, 0.4 s, 0.4 s, 0.1 s) p min(0.99, 0.8 s) ->
    grayscale p 0.2 s -> normalise (`raw`: none, as their surrogates see [0, 1] pixels)."""
    if not 0 < strength <= 1:
        raise ValueError(f"the augmentation strength must be in (0, 1], got {strength}")
    s = float(strength)
    return _Pipeline(_rrc(size, (max(1 - 0.9 * s, 0.05), 1.0)), K.RandomHorizontalFlip(),
                     K.ColorJitter(0.4 * s, 0.4 * s, 0.4 * s, 0.1 * s, p=min(0.99, 0.8 * s)),
                     K.RandomGrayscale(p=0.2 * s), _normalize(dataset))


def probe_augment(size: int, dataset: str) -> nn.Module:
    """Linear-probe training transform: RandomResizedCrop(scale 0.2..1) + flip + normalise."""
    return _Pipeline(_rrc(size, (0.2, 1.0)), K.RandomHorizontalFlip(), _normalize(dataset))


def supervised_augment(size: int, dataset: str) -> nn.Module:
    """Supervised recipe: size <= 64: zero-padded (size/8) random crop + flip; else RRC(0.08..1) + flip.

    For size <= 64 the input is expected at its native side ``size`` (as CIFAR's recipe assumes).
    """
    if size <= 64:
        crop: nn.Module = K.RandomCrop((size, size), padding=size // 8, fill=0, pad_if_needed=True)
    else:
        crop = _rrc(size, (0.08, 1.0))
    return _Pipeline(crop, K.RandomHorizontalFlip(), _normalize(dataset))


class _Eval(nn.Module):
    """Deterministic: normalise; resize first (antialiased) when the input is not ``size`` x ``size``."""

    def __init__(self, size: int, dataset: str) -> None:
        super().__init__()
        self.size = size
        if size >= 128:  # ImageNet convention: shorter side to size/0.875, then centre crop
            short = K.Resize(round(size / 0.875), side="short", antialias=True, align_corners=False)
            self.resize = K.AugmentationSequential(short, K.CenterCrop(size))
        else:
            self.resize = K.AugmentationSequential(K.Resize((size, size), antialias=True, align_corners=False))
        self.normalize = _normalize(dataset)

    def forward(self, images: Tensor) -> Tensor:
        x = _check(images)
        if tuple(x.shape[-2:]) != (self.size, self.size):
            x = self.resize(x)
        return self.normalize(x)


def eval_transform(size: int, dataset: str) -> nn.Module:
    """Test-time / transfer transform (see `_Eval`); no randomness."""
    return _Eval(size, dataset)
