"""The Poison artifact (bound, storage, verification, alignment), the attack registry and `random`."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from attacks import ATTACKS, AttackParamError, AttackSpec, Poison, PoisonError, generate_poison, params
from attacks.poison import FORMAT, checksum
from victims.registry import UnknownNameError

N, C, HW = 40, 4, 8
SPEC = AttackSpec(attack="random", dataset="synthetic", seed=7, scale="smoke")


@pytest.fixture()
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (N, 3, HW, HW), generator=g, dtype=torch.uint8)
    images[0] = 255  # saturated images: the clamp must act after the addition
    images[1] = 0
    return images, torch.arange(N) % C, torch.arange(N)


@pytest.fixture()
def poison(data) -> Poison:
    return generate_poison(SPEC, *data)


def _write(path: Path, delta: torch.Tensor, index: torch.Tensor, meta: dict) -> Path:
    save_file({"delta": delta, "index": index}, str(path), metadata=meta)
    return path


def _meta(p: Poison, **over) -> dict:
    m = {"format": FORMAT, "per": p.per, "eps": repr(p.eps), "spec": json.dumps(p.spec), "checksum": p.checksum}
    return {**m, **over}


def _refused(path: Path, match: str, **kw) -> None:
    with pytest.raises(PoisonError, match=match) as e:
        Poison.load(path, **kw)
    assert str(path) in str(e.value) and "bench run" in str(e.value)


def test_quantised_bound_and_apply_adds_then_clamps(data):
    images, labels, index = data
    raw = torch.randn(N, 3, HW, HW) * 20
    raw[0, 0, 0, :4] = torch.tensor([2.4, -3.6, 50.0, -50.0])
    raw[0, 1], raw[1, 1] = -7.0, 7.0  # negative noise on a white image, positive on a black one
    p = Poison.create(raw, "sample", 8 / 255, SPEC, index)
    assert p.delta.dtype == torch.int8 and p.eps_pixels == 8
    assert int(p.delta.abs().max()) == 8
    assert p.delta[0, 0, 0, :4].tolist() == [2, -4, 8, -8]
    out = p.apply(images, labels, index)
    ref = (images.int() + p.delta.int()).clamp(0, 255)
    assert out.dtype == torch.uint8 and torch.equal(out.int(), ref)
    assert (out[0, 1] == 248).all() and (out[1, 1] == 7).all()  # both signs of the noise survive


def test_random_seeded_and_spans_bound(data, poison):
    again = generate_poison(SPEC, *data)
    other = generate_poison(AttackSpec(**{**SPEC.to_dict(), "seed": 8}), *data)
    assert torch.equal(again.delta, poison.delta) and again.checksum == poison.checksum
    assert not torch.equal(other.delta, poison.delta)
    assert poison.per == "sample" and poison.spec == SPEC.to_dict() and torch.equal(poison.index, data[2])
    assert int(poison.delta.max()) == 8 and int(poison.delta.min()) == -8
    assert abs(poison.delta.float().mean()) < 0.3 and poison.delta.float().std() > 4  # uniform-like spread
    small = generate_poison(AttackSpec(**{**SPEC.to_dict(), "params": {"eps": 4 / 255}}), *data)
    assert small.eps_pixels == 4 and int(small.delta.abs().max()) == 4


def test_save_load_round_trip_and_size(tmp_path, poison):
    path = poison.save(tmp_path / "sub" / "p.safetensors")
    back = Poison.load(path, expected_spec=SPEC.to_dict())
    assert torch.equal(back.delta, poison.delta) and torch.equal(back.index, poison.index)
    assert (back.per, back.eps, back.spec, back.checksum) == (poison.per, poison.eps, poison.spec, poison.checksum)
    assert Poison.load(path, expected_spec=SPEC).checksum == poison.checksum  # an AttackSpec works too
    assert [f.name for f in path.parent.iterdir()] == ["p.safetensors"]  # no temp file left behind
    assert poison.nbytes == N * 3 * HW * HW  # int8: a quarter of the float32 delta
    assert poison.nbytes * 4 == poison.delta.float().nelement() * poison.delta.float().element_size()
    assert poison.nbytes < path.stat().st_size < poison.nbytes + poison.index.numel() * 8 + 2048
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a poison")
    _refused(junk, "cannot be read")


def test_byte_flip_in_delta_refused(tmp_path, poison):
    path = poison.save(tmp_path / "p.safetensors")
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    start = 8 + n + json.loads(raw[8:8 + n])["delta"]["data_offsets"][0]
    j = int((poison.delta.flatten().abs() < 8).nonzero()[0])  # stays within the bound: only the checksum sees it
    raw[start + j] = (int(poison.delta.flatten()[j]) + 1) & 0xFF
    path.write_bytes(bytes(raw))
    _refused(path, "checksum")


@pytest.mark.parametrize("field,value", [("spec", "other"), ("eps", repr(16 / 255)), ("per", "class")])
def test_changed_metadata_refused(tmp_path, poison, field, value):
    if field == "spec":
        value = json.dumps({**poison.spec, "seed": 99})
    path = _write(tmp_path / "p.safetensors", poison.delta, poison.index, _meta(poison, **{field: value}))
    _refused(path, "checksum|per-class")


def test_bound_shape_and_spec_mismatch_refused(tmp_path, poison):
    spec = poison.spec

    def ck(delta: torch.Tensor, index: torch.Tensor, per: str = "sample") -> str:  # a valid checksum
        return checksum(delta, index, spec, per, poison.eps)

    over = poison.delta.clone()
    over[3, 0, 0, 0] = 9  # one pixel over the bound, with a valid checksum
    path = _write(tmp_path / "a", over, poison.index, _meta(poison, checksum=ck(over, poison.index)))
    _refused(path, "over the bound")
    short = poison.index[:-1]  # fewer ids than delta rows
    path = _write(tmp_path / "b", poison.delta, short, _meta(poison, checksum=ck(poison.delta, short)))
    _refused(path, "one id per delta row")
    cls_ck = ck(poison.delta, poison.index + 1, "class")  # per-class index not arange
    path = _write(tmp_path / "c", poison.delta, poison.index + 1, _meta(poison, per="class", checksum=cls_ck))
    _refused(path, "arange")
    wide = poison.delta.to(torch.int16)
    path = _write(tmp_path / "d", wide, poison.index, _meta(poison, checksum=ck(wide, poison.index)))
    _refused(path, "int8")
    path = _write(tmp_path / "e", poison.delta, poison.index, _meta(poison, format="other/9"))
    _refused(path, "format")
    path = poison.save(tmp_path / "f")
    _refused(path, "expected", expected_spec={**spec, "seed": 1})


def test_index_alignment(data, poison):
    images, labels, index = data
    full = poison.apply(images, labels, index)
    ids = torch.randperm(N, generator=torch.Generator().manual_seed(1))[:15]  # shuffled subset, by id
    sub = poison.apply(images[ids], labels[ids], ids)
    assert torch.equal(sub, full[ids])
    assert torch.equal(poison.perturbation_for(ids).delta, poison.delta[ids])
    perm = torch.randperm(N, generator=torch.Generator().manual_seed(3))  # a poison stored in shuffled order
    shuffled = Poison.create(poison.delta[perm], "sample", poison.eps, SPEC, perm)
    assert torch.equal(shuffled.apply(images[ids], labels[ids], ids), full[ids])
    part = Poison.create(poison.delta[10:], "sample", poison.eps, SPEC, index[10:])  # covers ids 10..39 only
    assert torch.equal(part.apply(images[ids[ids >= 10]], labels[ids[ids >= 10]], ids[ids >= 10]), full[ids[ids >= 10]])
    with pytest.raises(PoisonError, match=r"not 1 .*\[3\]"):
        part.perturbation_for(torch.tensor([12, 3, 20]))


def test_per_class_applies_delta_of_label(data):
    images, labels, index = data
    deltas = torch.randint(-8, 9, (C, 3, HW, HW), generator=torch.Generator().manual_seed(2))
    p = Poison.create(deltas, "class", 8 / 255, SPEC, torch.arange(C))
    ids = torch.tensor([5, 2, 31, 12])
    out = p.apply(images[ids], labels[ids], ids)
    assert torch.equal(out.int(), (images[ids].int() + deltas[labels[ids]]).clamp(0, 255))
    with pytest.raises(PoisonError, match="labels outside"):
        p.apply(images[:2], torch.tensor([0, C]), index[:2])


def test_unknown_names_list_valid_ones(data):
    with pytest.raises(UnknownNameError, match="valid attacks: .*random"):
        ATTACKS.get("nope")
    with pytest.raises(UnknownNameError, match="random"):
        generate_poison(AttackSpec(attack="nope"), *data)
    bad = AttackSpec(attack="random", params={"epz": 0.1})
    with pytest.raises(AttackParamError, match=r"\['epz'\].*valid parameters: \['eps'\]"):
        generate_poison(bad, *data)
    merged = params(AttackSpec(attack="random", params={"eps": 0.1}), {"eps": 0.03, "steps": 5})
    assert merged == {"eps": 0.1, "steps": 5}
