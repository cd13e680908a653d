"""Tests for victims.architectures: shapes, feature dims, stems, width scaling, errors."""
from __future__ import annotations

from functools import cache

import pytest
import torch
from torch import nn

from victims.architectures import ARCHITECTURES, UnknownNameError, arch_names, build_architecture

NAMES = ["resnet18", "resnet50", "vgg19", "densenet121", "mobilenetv2"]
FEATURE_DIM = {"resnet18": 512, "resnet50": 2048, "vgg19": 512, "densenet121": 1024, "mobilenetv2": 1280}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@cache
def full_params(name: str) -> int:
    return n_params(build_architecture(name))


def features(model: nn.Module, size: int, batch: int = 2) -> torch.Tensor:
    torch.manual_seed(0)
    with torch.no_grad():
        return model.eval()(torch.randn(batch, 3, size, size))


def test_registry_names() -> None:
    assert arch_names() == NAMES
    assert ARCHITECTURES.names() == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_cifar_stem_width1_shape_and_dim(name: str) -> None:
    model = build_architecture(name)  # defaults: cifar stem, width 1
    assert isinstance(model.feature_dim, int) and model.feature_dim == FEATURE_DIM[name]
    assert features(model, 32).shape == (2, FEATURE_DIM[name])


@pytest.mark.parametrize("name", NAMES)
def test_imagenet_stem_shape_and_dim(name: str) -> None:
    assert build_architecture(name, stem="imagenet").feature_dim == FEATURE_DIM[name]
    narrow = build_architecture(name, stem="imagenet", width=0.25)  # cheap 224-px forward
    assert features(narrow, 224).shape == (2, narrow.feature_dim)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("width", [0.125, 0.25, 0.5])
def test_small_widths_work_and_narrow(name: str, width: float) -> None:
    model = build_architecture(name, width=width)
    assert features(model, 32).shape == (2, model.feature_dim)
    assert n_params(model) < full_params(name)
    if name == "mobilenetv2":  # torchvision keeps last_channel = 1280 * max(1, width)
        assert model.feature_dim == 1280
    else:
        assert model.feature_dim == round(FEATURE_DIM[name] * width)


def test_resnet18_cifar_param_count() -> None:
    count = full_params("resnet18")
    assert abs(count - 11_168_832) / 11_168_832 < 0.01


# (module path of the first stage, its input resolution for the cifar 32-px / imagenet 224-px stems)
FIRST_STAGE = {
    "resnet18": ("layer1", 32, 56),
    "resnet50": ("layer1", 32, 56),
    "densenet121": ("features.denseblock1", 32, 56),
    "mobilenetv2": ("features.1", 32, 112),
    "vgg19": ("features.0", 32, 224),
}


@pytest.mark.parametrize("name", NAMES)
def test_stem_resolution(name: str) -> None:
    path, cifar_res, imagenet_res = FIRST_STAGE[name]
    for stem, size, expected in (("cifar", 32, cifar_res), ("imagenet", 224, imagenet_res)):
        model = build_architecture(name, stem=stem, width=0.25)
        seen: list[tuple[int, int]] = []
        model.get_submodule(path).register_forward_hook(lambda m, inp, out: seen.append(tuple(inp[0].shape[-2:])))
        features(model, size, batch=1)
        assert seen == [(expected, expected)], (stem, seen)


def test_cifar_stem_first_conv_is_3x3_stride1() -> None:
    for name in NAMES:
        conv = next(m for m in build_architecture(name, width=0.125).modules() if isinstance(m, nn.Conv2d))
        assert conv.kernel_size == (3, 3) and conv.stride == (1, 1), name


def test_unknown_name() -> None:
    with pytest.raises(UnknownNameError) as info:
        build_architecture("resnet34")
    assert all(n in str(info.value) for n in NAMES)


def test_bad_stem() -> None:
    with pytest.raises(ValueError, match="cifar.*imagenet"):
        build_architecture("resnet18", stem="tiny")


@pytest.mark.parametrize("name", NAMES)
def test_channels_last(name: str) -> None:
    model = build_architecture(name, width=0.25).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_gradient_reaches_input() -> None:
    model = build_architecture("resnet18", width=0.25).train()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
