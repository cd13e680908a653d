"""The defenses axis (issue 35): the registry and its parameters, each built-in defense's behaviour, keys that
stay as they were, partial poisoning, and victims that defend themselves at the smoke scale."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attacks.spec import AttackSpec
from benchmark.cli.main import main
from benchmark.specs import VictimSpec
from defenses import DEFENSES, DefenseParamError, DefenseSpec, defense_params
from defenses.adversarial_training import pgd_views
from defenses.matrix_completion import usvt
from defenses.transforms import pil_grayscale
from victims.poisoning import Perturbation, balanced_mask
from victims.recipes import build_model

REPO = Path(__file__).resolve().parents[1]


def images(n: int = 8, side: int = 32, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, side, side), generator=torch.Generator().manual_seed(seed),
                         dtype=torch.uint8)


def apply(name: str, x: torch.Tensor, **params) -> torch.Tensor:
    spec = DefenseSpec(name, params)
    return DEFENSES.get(name)().transform(x, defense_params(spec, "mini"), seed=0)


def test_the_built_in_defenses_are_registered_with_their_facts():
    assert {"none", "jpeg", "grayscale", "blur", "bit-depth", "median", "matrix-completion",
            "adversarial-training"} <= set(DEFENSES)
    for name in DEFENSES:
        defense = DEFENSES.get(name)
        assert defense.acts_on in ("data", "training") and defense.source and defense.cost, name
    assert DEFENSES.get("adversarial-training").acts_on == "training"
    assert DEFENSES.get("matrix-completion").acts_on == "data"


@pytest.mark.parametrize("name, params, message", [
    ("jpeg", {"quality": 0}, "quality must be an integer in \\[1, 100\\]"),
    ("jpeg", {"quality": 101}, "quality must be an integer"),
    ("matrix-completion", {"keep": 0}, "keep must be a number in \\(0, 1\\]"),
    ("matrix-completion", {"keep": 1.5}, "keep must be"),
    ("blur", {"kernel": 4}, "kernel must be odd"),
    ("bit-depth", {"bits": 9}, "bits must be an integer in \\[1, 8\\]"),
    ("adversarial-training", {"steps": 0}, "steps must be"),
    ("jpeg", {"qualty": 10}, "unknown parameter.*qualty.*valid parameters: \\['quality'\\]"),
])
def test_a_parameter_out_of_range_is_refused_with_its_range(name, params, message):
    with pytest.raises(DefenseParamError, match=message):
        defense_params(DefenseSpec(name, params), "mini")
    with pytest.raises(DefenseParamError, match=message):  # a victim spec refuses it too
        VictimSpec("simclr", defense=DefenseSpec(name, params))


def test_an_unknown_defense_lists_the_valid_ones():
    with pytest.raises(ValueError, match="unknown defense 'jpg'; valid defenses: .*jpeg"):
        VictimSpec("simclr", defense=DefenseSpec("jpg"))


def test_per_scale_defaults_apply_and_given_parameters_win():
    assert defense_params(DefenseSpec("adversarial-training"), "paper")["steps"] == 10
    assert defense_params(DefenseSpec("adversarial-training"), "mini")["steps"] == 3
    assert defense_params(DefenseSpec("adversarial-training", {"steps": 5}), "mini")["steps"] == 5


def test_grayscale_is_pillows_and_three_channels():
    x = images()
    ours = apply("grayscale", x)
    for i in range(len(x)):
        pil = np.asarray(Image.fromarray(x[i].permute(1, 2, 0).numpy()).convert("L"))
        assert torch.equal(pil_grayscale(x[i:i + 1])[0], torch.from_numpy(pil.copy()))
        assert torch.equal(ours[i, 0], ours[i, 1]) and torch.equal(ours[i, 0], ours[i, 2])


def test_jpeg_is_pillows_round_trip_and_lower_quality_loses_more():
    x = images()
    ten, ninety = apply("jpeg", x, quality=10), apply("jpeg", x, quality=90)
    buffer = io.BytesIO()
    Image.fromarray(x[0].permute(1, 2, 0).numpy()).save(buffer, format="JPEG", quality=10)
    assert torch.equal(ten[0], torch.from_numpy(np.asarray(Image.open(buffer).convert("RGB")).copy()).permute(2, 0, 1))
    error = lambda y: (y.float() - x.float()).abs().mean()  # noqa: E731
    assert error(ten) > error(ninety) > 0


def test_bit_depth_median_and_blur_do_what_they_say():
    x = images()
    assert set(apply("bit-depth", x, bits=1).unique().tolist()) <= {0, 255}
    assert len(apply("bit-depth", x, bits=3).unique()) <= 8
    flat = torch.full((1, 3, 16, 16), 100, dtype=torch.uint8)
    spike = flat.clone()
    spike[0, :, 8, 8] = 255
    assert torch.equal(apply("median", spike, kernel=3), flat)  # an isolated spike is removed
    assert torch.equal(apply("blur", flat, kernel=5, sigma=1.0), flat)  # a constant image stays
    assert not torch.equal(apply("blur", spike, kernel=5, sigma=1.0), spike)
    assert torch.equal(apply("none", x), x)


def test_matrix_completion_keeps_everything_at_full_keep_and_rank_and_recovers_a_low_rank_image():
    x = images(4)
    exact = usvt(x, 1.0, 1.0, torch.Generator().manual_seed(0))
    assert (exact.int() - x.int()).abs().max() <= 1  # only 8-bit rounding
    # a rank-1 image [R|G|B] = u v^T (rank 2 once centred to [-1, 1]), half its entries dropped, comes back
    # closer from 2 singular values than from ME-Net's 25 of 32, which keep the mask's noise (ME-Net's premise)
    u, v = torch.linspace(0.2, 1, 32), torch.linspace(0.3, 1, 96)
    low = (u[:, None] * v[None] * 255).round().to(torch.uint8).reshape(32, 3, 32).permute(1, 0, 2)[None]
    error = {r: float((usvt(low, 0.5, r, torch.Generator().manual_seed(0)).float() - low.float()).abs().mean())
             for r in (2 / 32, 0.8)}
    assert error[2 / 32] < 16 < 30 < error[0.8]
    seeded = apply("matrix-completion", x)
    assert torch.equal(seeded, apply("matrix-completion", x)) and seeded.dtype == torch.uint8  # seeded masks


def test_adversarial_views_stay_in_the_ball_raise_the_loss_and_leave_the_state_alone():
    torch.manual_seed(0)
    model, _, _ = build_model("moco", "resnet18", "smoke", 10, 32, seed=0)
    views = [(torch.rand(16, 3, 32, 32) * 0.8 + 0.1 - 0.5) / 0.25 for _ in range(2)]  # normalised pixels
    labels = torch.zeros(16, dtype=torch.long)
    mean, std = torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.25, 0.25])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    adv = pgd_views(model, views, labels, eps=8 / 255, steps=3, step_size=0.25, mean=mean, std=std,
                    generator=torch.Generator().manual_seed(0))
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # queue, key encoder, BN statistics restored
    assert torch.equal(adv[1], views[1])
    assert ((adv[0] - views[0]) * std.view(1, 3, 1, 1)).abs().max() <= 8 / 255 + 1e-6  # the ball, in pixels
    with torch.no_grad():
        state = {k: v.clone() for k, v in model.state_dict().items()}
        clean_loss = float(model.pair_loss(*views))
        model.load_state_dict(state)
        adv_loss = float(model.pair_loss(*adv))
    assert adv_loss > clean_loss


def test_defaults_leave_the_key_of_a_record_made_before_the_defense_axis():
    record = json.loads(next((REPO / "results" / "records" / "mini").glob("*.json")).read_text())
    spec = VictimSpec.from_dict(record["victim"])
    assert spec.key == record["key"]
    assert VictimSpec.from_dict({**record["victim"], "defense": None}).key == record["key"]
    from dataclasses import replace

    assert replace(spec, defense=DefenseSpec("none")).key == record["key"]
    defended = replace(spec, defense=DefenseSpec("jpeg"))
    assert defended.key != record["key"] and VictimSpec.from_dict(defended.to_dict()) == defended


def test_partial_poisoning_picks_a_seeded_class_balanced_share():
    labels = torch.arange(100) % 4
    mask = balanced_mask(labels, 0.5, seed=3)
    assert [int(mask[labels == c].sum()) for c in range(4)] == [round(0.5 * 25)] * 4
    assert torch.equal(mask, balanced_mask(labels, 0.5, seed=3))
    assert not torch.equal(mask, balanced_mask(labels, 0.5, 4))
    delta = torch.ones(4, 3, 2, 2, dtype=torch.int8)
    rows = Perturbation(delta, "class", mask).rows(torch.arange(100), labels)
    assert torch.equal(rows.flatten(1).amax(1).bool(), mask)  # only the chosen images are perturbed
    with pytest.raises(ValueError, match="needs a poison"):
        VictimSpec("simclr", poison_ratio=0.5)
    with pytest.raises(ValueError, match="poison_ratio must be in"):
        VictimSpec("simclr", poison=AttackSpec("cp-c", algorithm="simclr", arch="resnet18"), poison_ratio=0)


def test_defended_victims_at_the_smoke_scale_record_their_defense_and_share_one_cached_data_set(tmp_path: Path):
    from benchmark.jobs.poison import make_poison
    from benchmark.jobs.victim import run_victim
    from benchmark.report.tables import is_current

    poison = AttackSpec("random", "cifar10", scale="smoke")
    made = make_poison(poison, store=tmp_path, progress=False)
    spec = VictimSpec("simclr", poison=poison, scale="smoke", defense=DefenseSpec("jpeg", {"quality": 20}),
                      poison_ratio=0.5)
    record = run_victim(spec, poison=made, store=tmp_path, results=tmp_path / "results", progress=False)
    assert record["defense"]["params"] == {"quality": 20} and record["defense"]["cached"] is False
    assert record["settings"]["defense"] == {"quality": 20} and record["poison"]["ratio"] == 0.5
    assert record["poison"]["poisoned_images"] == len(balanced_mask(torch.arange(320) % 10, 0.5, 1112).nonzero())
    assert is_current(record)
    other_seed = VictimSpec("simclr", poison=poison, scale="smoke", seed=7, defense=spec.defense, poison_ratio=0.5)
    again = run_victim(other_seed, poison=made, store=tmp_path, results=tmp_path / "results", progress=False)
    assert again["defense"]["cached"] is True and again["defense"]["file"] == record["defense"]["file"]
    assert len(list((tmp_path / "defended" / "smoke").glob("*.safetensors"))) == 1


def test_the_command_line_refuses_bad_defense_input_before_any_work(tmp_path: Path, capsys):
    base = ["--store", str(tmp_path / "store"), "victim", "--algorithm", "simclr", "--scale", "smoke",
            "--results", str(tmp_path / "results")]
    for extra, message in ((["--defense", "jpeg", "--defense-param", "quality=0"], "quality must be"),
                           (["--defense", "jpg"], "unknown defense 'jpg'"),
                           (["--defense-param", "quality=5"], "needs --defense"),
                           (["--attack", "cp-c", "--poison-ratio", "0"], "must be in \\(0, 1\\]")):
        assert main(base + extra) == 2
        assert __import__("re").search(message, capsys.readouterr().err)
    assert not (tmp_path / "store").exists() and not (tmp_path / "results").exists()


def test_perf_defense_times_every_data_defense(capsys):
    from benchmark.jobs.perf import perf_defense

    count, seconds = perf_defense("smoke", synthetic=True, images=64)
    assert count == 64 and set(seconds) == {n for n in DEFENSES if DEFENSES.get(n).acts_on == "data"} - {"none"}
    assert all(s > 0 for s in seconds.values())


def test_a_defended_or_partial_victim_job_is_named_and_costed_by_its_defense_and_ratio():
    from benchmark.dispatch.plan import Job

    poison = AttackSpec("cp-c", "cifar10", "simclr", "resnet18", scale="mini")
    plain = VictimSpec("simclr", poison=poison)
    trained = Job("victim", plain.key, victim=plain)
    adversarial = VictimSpec("simclr", poison=poison, defense=DefenseSpec("adversarial-training"), poison_ratio=0.5)
    job = Job("victim", adversarial.key, victim=adversarial)
    assert "-cp-c-adversarial-training-r0.5-" in job.name and "-cp-c-" + plain.key[:8] in trained.name
    assert job.gpu_hours == pytest.approx(4 * trained.gpu_hours)  # mini: 3 PGD steps + the training pass
    jpeg = VictimSpec("simclr", poison=poison, defense=DefenseSpec("jpeg"))
    assert Job("victim", jpeg.key, victim=jpeg).gpu_hours == trained.gpu_hours


def test_the_untrained_control_has_nothing_to_defend():
    with pytest.raises(ValueError, match="nothing to defend"):
        VictimSpec("untrained", defense=DefenseSpec("jpeg"))
    assert VictimSpec("untrained", defense=DefenseSpec("none")).key == VictimSpec("untrained").key
