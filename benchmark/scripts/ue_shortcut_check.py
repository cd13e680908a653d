"""Is the mini scale's UE-S poison a shortcut, and does it survive the supervised victim's crop and flip?
(issue 4: UE-S leaves the mini supervised victim unchanged). Not a benchmark record: numbers printed.

Makes (or reuses, under `--store`) the UE-S poison of the mini scale with `--params` over its budget, trains
a short supervised mini victim on it (the mini's settings but `--epochs`, with the supervised crop + flip or,
with `--no-augment`, none) and prints its loss per epoch and its test accuracy. `--clean` trains the same
victim on clean data, the baseline to compare with.

    python benchmark/scripts/ue_shortcut_check.py --epochs 8 --clean
    python benchmark/scripts/ue_shortcut_check.py --epochs 8
    python benchmark/scripts/ue_shortcut_check.py --epochs 8 --no-augment
    python benchmark/scripts/ue_shortcut_check.py --epochs 8 --params '{"pgd_steps": 20}'
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import torch

from attacks.spec import AttackSpec
from benchmark.jobs.poison import make_poison
from benchmark.jobs.splits import load_split
from benchmark.jobs.victim import victim_train_config
from benchmark.scales import get_scale
from benchmark.specs import VictimSpec
from victims.augment import eval_transform, supervised_augment
from victims.probe import classifier_accuracy
from victims.recipes import build_model
from victims.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=None, help="default: $BENCH_DATA")
    parser.add_argument("--store", default="store/explore", help="where the poison is made or found")
    parser.add_argument("--params", default="{}", help="JSON over the mini UE-S budget, e.g. '{\"pgd_steps\": 20}'")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--no-augment", action="store_true", help="train the victim without crop and flip")
    parser.add_argument("--clean", action="store_true", help="train the victim on clean data")
    args = parser.parse_args()

    scale = get_scale("mini")
    train = load_split(scale, "cifar10", "train", data_root=args.data_root, store=args.store)
    test = load_split(scale, "cifar10", "test", data_root=args.data_root, store=args.store)
    perturbation, what = None, "clean"
    if not args.clean:
        spec = AttackSpec("ue-s", "cifar10", "supervised", "resnet18", params=json.loads(args.params), scale="mini")
        started = time.perf_counter()
        poison = make_poison(spec, data_root=args.data_root, store=args.store, progress=False)
        print(f"ue-s {spec.params} ready in {time.perf_counter() - started:.0f} s", flush=True)
        perturbation, what = poison.perturbation_for(train.index), f"ue-s {spec.params}"
    victim = VictimSpec(algorithm="supervised", arch="resnet18", dataset="cifar10", scale="mini")
    torch.manual_seed(victim.seed)
    model, _, _ = build_model("supervised", "resnet18", "mini", train.num_classes,
                              input_size=scale.source("cifar10").input_size)
    config = replace(victim_train_config(victim), epochs=args.epochs, checkpoint_every=0)
    augment = eval_transform(32, "cifar10") if args.no_augment else supervised_augment(32, "cifar10")
    result = fit(model, train.images, train.labels, config, augment, device="cpu", perturbation=perturbation,
                 checkpoint=None, progress=False)
    accuracy = classifier_accuracy(model, test.images, test.labels, input_size=32, normalization="cifar10",
                                   device="cpu")
    print(f"{what}, victim {args.epochs} epochs {'without' if args.no_augment else 'with'} crop+flip: "
          f"loss per epoch {[round(h['loss'], 2) for h in result.history]}, test accuracy {accuracy:.2f}% "
          f"(mini CIFAR-10: 10,000 training images, full test set)", flush=True)


if __name__ == "__main__":
    main()
