"""One victim run end to end at the smoke scale: record contents, the control, resume, the CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmark.cli.main import main
from benchmark.jobs.victim import run_victim
from benchmark.records import read_records
from benchmark.specs import EvalSpec, VictimSpec
from victims.registry import UnknownNameError


def test_smoke_victim_writes_a_complete_record(tmp_path: Path):
    spec = VictimSpec("simclr", scale="smoke")
    record = run_victim(spec, EvalSpec(("cifar10", "stl10")), store=tmp_path / "store", results=tmp_path / "res",
                        progress=False)
    (path,) = (tmp_path / "res" / "records" / "smoke").glob("*.json")
    assert json.loads(path.read_text()) == record
    assert record["key"] == spec.key and record["victim"]["algorithm"] == "simclr" and record["attack"] == "none"
    for name in ("cifar10", "stl10"):
        m = record["metrics"][name]
        assert 0 <= m["probe_final"] <= m["probe_best"] <= 100 and 0 <= m["knn"] <= 100
        assert len(m["probe_history"]) == record["settings"]["probe"]["epochs"]
    assert len(record["history"]) == record["settings"]["train"]["epochs"]
    assert record["data"]["stands_for"].startswith("cifar10 -> synthetic")
    assert record["versions"]["torch"] and record["hardware"]["cpu_count"] and record["timing"]["train_s"] > 0
    assert read_records(tmp_path / "res", "smoke") == [record]

    again = run_victim(spec, store=tmp_path / "store", results=tmp_path / "res", progress=False)
    assert again["resumed_from_epoch"] == len(record["history"])  # the final checkpoint: nothing retrained
    assert again["metrics"]["cifar10"]["knn"] == record["metrics"]["cifar10"]["knn"]


def test_untrained_control_and_supervised_accuracy(tmp_path: Path):
    control = run_victim(VictimSpec("untrained", scale="smoke"), store=tmp_path, results=tmp_path, progress=False)
    assert control["history"] == [] and control["timing"]["train_s"] == 0 and "train" not in control["settings"]
    supervised = run_victim(VictimSpec("supervised", scale="smoke"), store=tmp_path, results=tmp_path,
                            progress=False)
    assert 0 <= supervised["metrics"]["cifar10"]["test_accuracy"] <= 100


def test_specs_reject_unknown_names():
    with pytest.raises(UnknownNameError, match="simclr, moco, byol, supervised"):
        VictimSpec("swav")
    with pytest.raises(UnknownNameError, match="resnet18"):
        VictimSpec("simclr", arch="vit")
    with pytest.raises(UnknownNameError, match="smoke, mini, paper"):
        VictimSpec("simclr", scale="huge")
    with pytest.raises(UnknownNameError, match="cifar10"):
        VictimSpec("simclr", dataset="mnist")


def test_cli_victim_reports_bad_names(capsys):
    assert main(["victim", "--algorithm", "swav"]) == 2
    assert "valid algorithms: simclr, moco, byol, supervised" in capsys.readouterr().err


def test_cli_victim_under_torchrun_with_two_processes(tmp_path: Path):
    """Two CPU processes (gloo) train one victim; rank 0 writes the one record."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "benchmark.cli.main", "victim", "--algorithm", "moco", "--scale", "smoke", "--device", "cpu",
           "--store", str(tmp_path / "store"), "--results", str(tmp_path / "res")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = (tmp_path / "res" / "records" / "smoke").glob("*.json")
    record = json.loads(path.read_text())
    assert record["victim"]["algorithm"] == "moco" and len(record["history"]) == 2


def test_poisoned_victim_trains_on_the_stored_poison(tmp_path: Path):
    from attacks import PoisonError
    from attacks.spec import AttackSpec
    from benchmark.jobs.poison import load_poison, make_poison

    attack = AttackSpec("random", "cifar10", scale="smoke")
    clean = run_victim(VictimSpec("simclr", scale="smoke"), store=tmp_path, results=tmp_path, progress=False)
    spec = VictimSpec("simclr", poison=attack, scale="smoke")
    with pytest.raises(PoisonError, match="make it first"):  # a victim receives its poison, never makes it
        run_victim(spec, store=tmp_path, results=tmp_path, progress=False)
    made = make_poison(attack, store=tmp_path, progress=False)
    poisoned = run_victim(spec, poison=made, store=tmp_path, results=tmp_path, progress=False)
    stored = load_poison(attack, tmp_path)
    assert poisoned["poison"]["checksum"] == stored.checksum and poisoned["attack"] == "random"
    assert poisoned["history"][0]["loss"] != clean["history"][0]["loss"]  # same seed and views: the data differ
    assert make_poison(attack, store=tmp_path, progress=False).checksum == stored.checksum  # reused, not remade


def test_a_scale_gives_slow_architectures_and_small_data_sets_their_own_epochs():
    from dataclasses import replace

    from benchmark.scales import get_scale

    mini = get_scale("mini")
    default = mini.train["simclr"]
    assert mini.train_config("simclr", "cifar10", "resnet18") == default
    dense = mini.train_config("simclr", "cifar10", "densenet121")
    assert dense.epochs == mini.arch_epochs["densenet121"] < default.epochs
    assert 1 <= dense.warmup_epochs < default.warmup_epochs and dense.checkpoint_every <= dense.epochs
    assert (dense.lr, dense.batch_size) == (default.lr, default.batch_size)
    small = mini.train_config("moco", "imagenet100", "resnet18")
    assert small.epochs == 60 and small.warmup_epochs == round(default.warmup_epochs * 60 / default.epochs)
    both = replace(mini, dataset_epochs={"cifar10": 11}, arch_epochs={"vgg19": 7})
    assert both.train_config("simclr", "cifar10", "vgg19").epochs == 7  # the architecture's entry wins
    assert both.train_config("simclr", "cifar10", "resnet18").epochs == 11
    assert mini.train_config("supervised", "cifar10", "resnet18").warmup_epochs == 0


def test_a_poison_made_again_differently_retrains_its_victim_instead_of_resuming(tmp_path: Path):
    """The victim's checkpoint belongs to one poison (its checksum is in the name): after the poison is made
    again with other contents (a new budget, new code), the victim trains from scratch on it."""
    from attacks import Poison
    from attacks.spec import AttackSpec
    from benchmark.jobs.poison import load_poison, make_poison, poison_path

    attack = AttackSpec("random", "cifar10", scale="smoke")
    spec = VictimSpec("simclr", poison=attack, scale="smoke")
    make_poison(attack, store=tmp_path, progress=False)  # a victim job receives its poison, made first
    first = run_victim(spec, store=tmp_path, results=tmp_path, progress=False)
    assert run_victim(spec, store=tmp_path, results=tmp_path, progress=False)["resumed_from_epoch"] == \
        len(first["history"])  # the same poison: resumed from its final checkpoint
    old = load_poison(attack, tmp_path)
    remade = Poison.create(-old.delta, old.per, old.eps, attack, old.index)
    remade.save(poison_path(attack, tmp_path))
    again = run_victim(spec, store=tmp_path, results=tmp_path, progress=False)
    assert again["poison"]["checksum"] == remade.checksum != first["poison"]["checksum"]
    assert again["resumed_from_epoch"] == 0 and again["history"][0]["loss"] != first["history"][0]["loss"]


def test_victims_build_their_models_with_the_recipes_build_model(monkeypatch, tmp_path: Path):
    """run_victim's network is victims.recipes.build_model's at the data source's input size (mini STL-10:
    96-px images at 32 px), drawn from the global RNG seeded with the victim's seed."""
    import torch

    import benchmark.jobs.victim as victim_job
    from victims.recipes import build_model

    def first_kernel(model):
        return next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)).kernel_size

    model, _, size = build_model("simclr", "resnet18", "mini", 10, 96, input_size=32)
    assert size == 32 and first_kernel(model) == (3, 3)  # the CIFAR stem
    model, _, size = build_model("simclr", "resnet18", "mini", 10, 256)
    assert size == 224 and first_kernel(model) == (7, 7)  # the ImageNet stem

    built = {}

    class Built(Exception):
        pass

    def stop(algorithm, *args, **kwargs):  # the model as training would get it
        built["state"] = algorithm.state_dict()
        raise Built

    monkeypatch.setattr(victim_job, "fit", stop)
    with pytest.raises(Built):
        run_victim(VictimSpec("moco", scale="smoke", seed=5), store=tmp_path, results=tmp_path, progress=False)
    torch.manual_seed(5)
    expected, _, _ = build_model("moco", "resnet18", "smoke", 10, input_size=32)
    assert built["state"].keys() == expected.state_dict().keys()
    assert all(torch.equal(v, expected.state_dict()[k]) for k, v in built["state"].items())
