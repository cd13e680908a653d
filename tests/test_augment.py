"""Tests for victims.augment: differentiability, normalisation, randomness and torchvision parity."""
from __future__ import annotations

import math

import kornia
import kornia.augmentation as K
import pytest
import torch
import torchvision.transforms.v2.functional as TF

from victims.augment import contrastive_augment, eval_transform, probe_augment, supervised_augment, to_float
from victims.normalization import NORMALIZATION, normalization_for
from victims.registry import UnknownNameError

# Tolerances (max abs diff, pixel units in [0, 1]) measured on float32 CPU, with ~2x headroom.
TOL_BRIGHTNESS = 1e-6  # identical formula: clamp(x * f)
TOL_GRAY = 1e-4 + 1e-6  # kornia luma weights 0.299/0.587/0.114 vs torchvision 0.2989/0.587/0.114
TOL_BLEND = 1e-4  # contrast / saturation: only the 1e-4 red-weight difference, times |1 - f|
TOL_HUE = 1e-5  # both go through HSV; measured ~1.4e-6
TOL_COMBINED = 2e-4  # measured ~5e-5

PIPELINES = {
    "contrastive": contrastive_augment,
    "probe": probe_augment,
    "supervised": supervised_augment,
    "eval": eval_transform,
}


def _module(pipe: torch.nn.Module, cls: type) -> torch.nn.Module:
    found = [m for m in pipe.modules() if isinstance(m, cls)]
    assert len(found) == 1, f"expected one {cls.__name__} in {pipe}"
    return found[0]


def _smooth(b: int, h: int, w: int) -> torch.Tensor:
    """A low-frequency image, so resampling conventions (not aliasing) dominate any difference."""
    g = torch.Generator().manual_seed(1)
    coarse = torch.rand(b, 3, 6, 6, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)


# ---------------------------------------------------------------- normalisation / conversion


def test_normalization_table() -> None:
    assert normalization_for("cifar10") == ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
    assert normalization_for("cifar100") == ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761))
    for name in ("stl10", "imagenet100", "imagenette"):
        assert normalization_for(name) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert normalization_for("synthetic") == ((0.5,) * 3, (0.25,) * 3)
    with pytest.raises(UnknownNameError, match="cifar10.*synthetic"):
        normalization_for("mnist")


def test_to_float() -> None:
    u = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.allclose(to_float(u), torch.tensor([0.0, 0.2, 1.0]))
    f = torch.rand(3)
    assert to_float(f) is f
    with pytest.raises(TypeError):
        to_float(torch.zeros(3, dtype=torch.int64))


# ---------------------------------------------------------------- shapes, gradients, normalisation

CASES = [  # (pipeline, size, input side)
    ("contrastive", 32, 32),
    ("contrastive", 32, 96),
    ("probe", 32, 32),
    ("supervised", 32, 32),
    ("supervised", 96, 96),
    ("eval", 32, 32),  # normalise only
    ("eval", 32, 96),  # straight resize
    ("eval", 128, 150),  # shorter side -> 146, centre crop
]


@pytest.mark.parametrize("name,size,side", CASES)
def test_gradient_reaches_input(name: str, size: int, side: int) -> None:
    torch.manual_seed(0)
    x = torch.rand(4, 3, side, side, requires_grad=True)
    out = PIPELINES[name](size, "cifar10")(x)
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (x.grad != 0).any(dim=(1, 2, 3)).all(), "every image must receive gradient"


def test_gradient_finite_on_gray_black_and_white_pixels() -> None:
    """HSV hue/saturation steps must not produce NaN/inf at R=G=B, 0 or 1 (common in uint8 data)."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (16, 3, 16, 16)) / 255.0
    x[:, :, :4] = x[:, :1, :4]
    x[:, :, 4:6], x[:, :, 6:8] = 0.0, 1.0
    x.requires_grad_(True)
    out = contrastive_augment(16, "cifar10")(x)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad != 0).any()


def test_pipeline_configs() -> None:
    assert _module(probe_augment(32, "cifar10"), K.RandomResizedCrop)._param_generator.scale == (0.2, 1.0)
    assert _module(supervised_augment(96, "stl10"), K.RandomResizedCrop)._param_generator.scale == (0.08, 1.0)
    for pipe in (probe_augment(32, "cifar10"), supervised_augment(32, "cifar10")):
        assert not any(isinstance(m, (K.ColorJitter, K.ColorJiggle, K.RandomGrayscale)) for m in pipe.modules())
        assert _module(pipe, K.RandomHorizontalFlip).p == 0.5


@pytest.mark.parametrize("name,size,side", CASES)
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_shape_and_dtype(name: str, size: int, side: int, dtype: torch.dtype) -> None:
    x = torch.randint(0, 256, (3, 3, side, side), dtype=torch.uint8)
    x = x if dtype == torch.uint8 else x.float() / 255
    out = PIPELINES[name](size, "stl10")(x)
    assert out.shape == (3, 3, size, size) and out.dtype == torch.float32 and out.device == x.device


def test_rejects_non_rgb_batch() -> None:
    with pytest.raises(ValueError):
        eval_transform(32, "cifar10")(torch.rand(3, 32, 32))


@pytest.mark.parametrize("dataset", sorted(NORMALIZATION))
@pytest.mark.parametrize("size,hw", [(32, (32, 32)), (32, (96, 96)), (128, (150, 200))])
def test_eval_of_mean_image_is_zero(dataset: str, size: int, hw: tuple[int, int]) -> None:
    mean, std = normalization_for(dataset)
    x = torch.tensor(mean).view(1, 3, 1, 1).expand(2, 3, *hw).contiguous()
    out = eval_transform(size, dataset)(x)
    assert out.shape == (2, 3, size, size)
    assert out.abs().max() < 1e-5
    # and a white image maps to (1 - mean) / std
    out = eval_transform(size, dataset)(torch.ones(2, 3, *hw))
    expect = ((1 - torch.tensor(mean)) / torch.tensor(std)).view(1, 3, 1, 1)
    assert torch.allclose(out, expect.expand_as(out), atol=1e-5)


@pytest.mark.parametrize("side", [32, 96])
def test_eval_uint8_equals_float(side: int) -> None:
    u = torch.randint(0, 256, (4, 3, side, side), dtype=torch.uint8)
    ev = eval_transform(32, "cifar10")
    assert torch.allclose(ev(u), ev(u.float() / 255), atol=1e-6)
    assert torch.equal(ev(u), ev(u))  # deterministic


@pytest.mark.parametrize("size,hw", [(32, (96, 96)), (64, (32, 32)), (128, (160, 200))])
def test_eval_resize_matches_torchvision(size: int, hw: tuple[int, int]) -> None:
    """Antialiased, half-pixel (align_corners=False) resize; ImageNet resize/0.875 + centre crop for >= 128."""
    x = _smooth(2, *hw)
    mean, std = normalization_for("stl10")
    if size >= 128:
        ref = TF.center_crop(TF.resize(x, round(size / 0.875), antialias=True), [size, size])
    else:
        ref = TF.resize(x, [size, size], antialias=True)
    out = eval_transform(size, "stl10")(x) * torch.tensor(std).view(1, 3, 1, 1) + torch.tensor(mean).view(1, 3, 1, 1)
    assert (out - ref).abs().max() < 1e-2  # measured 5.3e-3 (96->32), 3.1e-3, ~1e-7 (upscale)


def test_random_resized_crop_matches_torchvision_for_the_drawn_box() -> None:
    x = _smooth(4, 32, 32)
    rrc = _module(contrastive_augment(32, "cifar10"), K.RandomResizedCrop)
    out = rrc(x)
    ref = []
    for i, box in enumerate(rrc._params["src"]):
        (x0, y0), (x1, y1) = box[0].tolist(), box[2].tolist()
        ref.append(TF.resized_crop(x[i], int(y0), int(x0), int(y1 - y0 + 1), int(x1 - x0 + 1), [32, 32]))
    assert (out - torch.stack(ref)).abs().max() < 1e-5  # measured ~1e-7


def test_supervised_small_is_padded_crop() -> None:
    """size <= 64: a 4-pixel zero-padded random crop (no resampling): every output is a shifted input."""
    x = torch.rand(8, 3, 32, 32)
    out = supervised_augment(32, "synthetic")(x) * 0.25 + 0.5
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(8):
        cands = [padded[i, :, r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
        cands += [v.flip(-1) for v in cands]
        assert min((out[i] - v).abs().max().item() for v in cands) < 1e-6


# ---------------------------------------------------------------- randomness


def test_contrastive_views_independent_and_seed_reproducible() -> None:
    x = torch.rand(8, 3, 32, 32)
    aug = contrastive_augment(32, "cifar10")
    torch.manual_seed(123)
    v1, v2 = aug(x), aug(x)
    assert (v1 - v2).abs().max() > 0.1
    torch.manual_seed(123)
    assert torch.equal(aug(x), v1)
    torch.manual_seed(123)
    assert torch.equal(contrastive_augment(32, "cifar10")(x), v1)  # a fresh instance, too


# ---------------------------------------------------------------- colour jitter parity with torchvision


def _jitter(jit: K.ColorJitter, x: torch.Tensor, b, c, s, h, order) -> torch.Tensor:
    n = x.shape[0]
    params = {
        "brightness_factor": b, "contrast_factor": c, "saturation_factor": s, "hue_factor": h,
        "order": torch.tensor(order), "batch_prob": torch.ones(n, dtype=torch.bool),
    }  # fmt: skip
    return jit(x, params=params)


def _tv_jitter(x: torch.Tensor, b, c, s, h, order) -> torch.Tensor:
    steps = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    out = []
    for i, im in enumerate(x):
        for k in order:
            im = steps[k](im, float((b, c, s, h)[k][i]))
        out.append(im)
    return torch.stack(out)


def test_contrastive_uses_torchvision_semantic_jitter() -> None:
    aug = contrastive_augment(32, "cifar10")
    jit = _module(aug, K.ColorJitter)
    assert not any(isinstance(m, K.ColorJiggle) for m in aug.modules())
    assert (jit.brightness, jit.contrast, jit.saturation, jit.hue, jit.p) == (0.4, 0.4, 0.4, 0.1, 0.8)
    assert _module(aug, K.RandomGrayscale).p == 0.2
    assert _module(aug, K.RandomResizedCrop)._param_generator.scale == (0.2, 1.0)
    # the drawn factors follow torchvision's ranges; one random order is shared by the batch
    torch.manual_seed(0)
    aug(torch.rand(512, 3, 8, 8))
    p = jit._params
    ranges = {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4), "saturation": (0.6, 1.4), "hue": (-0.1, 0.1)}
    for key, (lo, hi) in ranges.items():
        f = p[f"{key}_factor"]
        assert lo <= f.min() and f.max() <= hi and f.max() - f.min() > 0.9 * (hi - lo)
    assert sorted(p["order"].tolist()) == [0, 1, 2, 3]
    assert 0.7 < p["batch_prob"].float().mean() < 0.9


ONE, ZERO = torch.ones(8), torch.zeros(8)
FAC = torch.linspace(0.0, 2.0, 8)  # wider than the paper's 0.6..1.4
HUE = torch.linspace(-0.5, 0.5, 8)


@pytest.mark.parametrize(
    "step,factors,tol",
    [
        ("brightness", (FAC, ONE, ONE, ZERO), TOL_BRIGHTNESS),
        ("contrast", (ONE, FAC, ONE, ZERO), TOL_BLEND),
        ("saturation", (ONE, ONE, FAC, ZERO), TOL_BLEND),
        ("hue", (ONE, ONE, ONE, HUE), TOL_HUE),
    ],
)
def test_jitter_step_matches_torchvision(step: str, factors, tol: float) -> None:
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 16)
    jit = _module(contrastive_augment(16, "cifar10"), K.ColorJitter)
    diff = (_jitter(jit, x, *factors, order=[0, 1, 2, 3]) - _tv_jitter(x, *factors, order=[0, 1, 2, 3])).abs()
    assert diff.max() < tol
    if step in ("contrast", "saturation"):  # the residual is the luma weight, nothing else
        assert diff.max() > 1e-6


@pytest.mark.parametrize("order", [[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [1, 3, 0, 2]])
def test_jitter_combined_matches_torchvision(order: list[int]) -> None:
    g = torch.Generator().manual_seed(sum(i * 10**k for k, i in enumerate(order)))
    x = torch.rand(16, 3, 16, 16, generator=g)
    b, c, s = (0.6 + 0.8 * torch.rand(16, generator=g) for _ in range(3))
    h = 0.2 * torch.rand(16, generator=g) - 0.1
    jit = _module(contrastive_augment(16, "cifar10"), K.ColorJitter)
    assert (_jitter(jit, x, b, c, s, h, order) - _tv_jitter(x, b, c, s, h, order)).abs().max() < TOL_COMBINED


def test_color_jiggle_is_not_torchvision() -> None:
    """Why ColorJiggle is not used: additive brightness (and HSV saturation) differ from torchvision."""
    x = torch.rand(8, 3, 16, 16)
    b = torch.full((8,), 1.3)
    jiggle = _jitter(K.ColorJiggle(0.4, 0.4, 0.4, 0.1), x, b, ONE, ONE, ZERO, [0, 1, 2, 3])
    assert torch.allclose(jiggle, (x + 0.3).clamp(0, 1), atol=1e-6)
    assert (jiggle - TF.adjust_brightness(x, 1.3)).abs().max() > 0.1
    s = torch.full((8,), 0.5)
    jiggle = _jitter(K.ColorJiggle(0.4, 0.4, 0.4, 0.1), x, ONE, ONE, s, ZERO, [0, 1, 2, 3])
    assert (jiggle - TF.adjust_saturation(x, 0.5)).abs().max() > 0.1


def test_grayscale_matches_torchvision() -> None:
    x = torch.rand(8, 3, 16, 16)
    ref = TF.rgb_to_grayscale(x, num_output_channels=3)
    gray = _module(contrastive_augment(16, "cifar10"), K.RandomGrayscale)
    out = gray(x, params={"batch_prob": torch.ones(8, dtype=torch.bool)})
    assert (out - ref).abs().max() < TOL_GRAY
    # the exact, known difference: 0.299 vs 0.2989 on the red channel
    k = kornia.color.rgb_to_grayscale(x)
    assert torch.allclose(k - TF.rgb_to_grayscale(x), 1e-4 * x[:, :1], atol=1e-6)
    assert math.isclose(float((out[:, 0] - out[:, 1]).abs().max()), 0.0)
