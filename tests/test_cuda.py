"""CUDA (issue 36): the authors' filters for a seed, their per-image transform, the unbounded (int16) poison."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from attacks import ATTACKS, AttackParamError, AttackSpec, Poison, PoisonError, generate_poison
from attacks.cuda import class_filters, convolve
from benchmark.grids import grid_cells


def test_the_filters_are_the_authors_for_their_seed():
    """numpy's legacy RNG in the authors' draw order (final_filter_unlearnable.py:80-96), seed 0, pb 0.3:
    values from docs/sources/cuda.md section 1."""
    f = class_filters(10, seed=0, blur_parameter=0.3)
    assert torch.allclose(f[0], torch.tensor([[.1646, .2146, 1], [.1635, .1271, .1938], [.1313, .2675, .2891]],
                                             dtype=torch.float64), atol=5e-5)
    centres = [tuple(int(i) for i in (f[c] == 1.0).nonzero()[0]) for c in range(10)]
    assert centres == [(0, 2), (0, 0), (0, 1), (0, 2), (2, 0), (0, 2), (2, 2), (0, 0), (1, 0), (1, 1)]
    assert f[1, 0].tolist()[0] == 1.0 and f[1, 0, 1] == pytest.approx(.0794, abs=5e-5)
    assert not torch.equal(class_filters(10, seed=1), f)


def naive(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """One image, one filter on each channel, zero padding, divided by its maximum, truncated to uint8."""
    x = image.float()[None] / 255
    w = kernel.float().expand(3, 1, *kernel.shape)
    y = F.conv2d(x, w, padding=kernel.shape[-1] // 2, groups=3)[0]
    return torch.floor((y / y.max() * 255).clamp(0, 255)).to(torch.uint8)


def test_the_batched_transform_is_the_per_image_one():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    filters = class_filters(3, seed=5)[torch.tensor([0, 1, 2, 2, 1, 0])]
    out = convolve(images, filters)
    for i in range(6):
        assert torch.equal(out[i], naive(images[i], filters[i]))
    assert int(out.flatten(1).amax(1).min()) >= 254  # each image rescaled to its own maximum
    gray = convolve(images, filters, grayscale=True)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])


def test_the_poison_releases_the_transformed_images_in_an_int16_delta(tmp_path):
    torch.manual_seed(1)
    images = torch.randint(0, 256, (20, 3, 8, 8), dtype=torch.uint8)
    labels, index = torch.arange(20) % 4, torch.arange(20) + 100
    spec = AttackSpec("cuda", "synthetic", scale="smoke", seed=3)
    poison = generate_poison(spec, images, labels, index, progress=False)
    assert poison.delta.dtype == torch.int16 and poison.eps_pixels == 255 and int(poison.delta.abs().max()) > 127
    released = convolve(images, class_filters(4, seed=3)[labels])
    assert torch.equal(poison.apply(images, labels, index), released)
    loaded = Poison.load(poison.save(tmp_path / "cuda.safetensors"), spec)
    assert torch.equal(loaded.delta, poison.delta) and loaded.checksum == poison.checksum
    # a bounded poison stays int8; an int16 delta under a small bound is refused
    small = Poison.create(torch.full((2, 3, 8, 8), 3), "sample", 8 / 255, spec)
    assert small.delta.dtype == torch.int8
    with pytest.raises(PoisonError, match="must be torch.int8 pixel units"):
        Poison(small.delta.to(torch.int16), "sample", small.eps, small.spec, small.index, small.checksum).verify()


@pytest.mark.parametrize("params, message", [({"kernel_size": 4}, "odd positive integer"),
                                             ({"blur_parameter": 0}, r"\(0, 10\]"),
                                             ({"grayscale": "yes"}, "true or false"),
                                             ({"sigma": 1}, "valid parameters")])
def test_bad_parameters_are_refused_with_the_valid_range(params, message):
    spec = AttackSpec("cuda", "synthetic", scale="smoke", params=params)
    with pytest.raises(AttackParamError, match=message):
        ATTACKS.get("cuda")().params(spec)


def test_cuda_is_ranked_and_measured_beyond_the_paper_s_tables():
    rows = {g: {c.row for c in grid_cells(g, "mini")} for g in ("beyond", "leaderboard", "effectiveness")}
    assert "cuda" in rows["beyond"] and "cuda" in rows["leaderboard"] and "cuda" not in rows["effectiveness"]
