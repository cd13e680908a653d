"""`bench parity`: run the authors' code beside ours (docs/parity.md).

  bench parity check  --reference DIR                     is DIR the authors' code at 628838c with kornia-pil?
  bench parity poison --reference DIR --attack cp-c --algorithm simclr [--warmup on|off]
                                                          their CP loop at the mini settings -> ext:ref-...
  bench parity victim --reference DIR --attack cp-s       their victim training on our poison, our probe
  bench parity steps  --reference DIR [--write]           the step-level comparisons (goldens: tests/golden/)
  bench parity table                                      the end-to-end table from the records
  bench parity augment --reference DIR                    kornia-pil's CP augmentations against ours (the gap)
"""
from __future__ import annotations

import argparse

from .reference import ReferenceError, locate


def cmd_parity(args: argparse.Namespace) -> int:
    if args.what == "table":  # reads records only: no reference needed
        from .report import table, write_table

        print(table(), end="")
        print(f"written to {write_table()}")
        return 0
    try:
        reference = locate(args.reference)  # before anything runs or is written
    except ReferenceError as err:
        print(f"bench parity {args.what}: {err}", file=__import__("sys").stderr)
        return 2
    if args.what == "check":
        print(f"reference ok: {reference.root} (kaiwenzha/contrastive-poisoning 628838c, kornia-pil c8b7b24)")
        return 0
    if args.what == "poison":
        from .e2e import reference_poison

        warmup = {"on": True, "off": False, None: None}[args.warmup]
        summary = reference_poison(reference, args.attack, args.algorithm, warmup=warmup,
                                   data_root=args.data_root, store=args.store, seed=args.seed)
        last = summary["history"][-1]
        print(f"{summary['name']}: their {args.attack} made with {args.algorithm} at the mini settings, "
              f"{last['epoch']} epochs (model loss {last['model_loss']:.3f}, noise loss {last['noise_loss']:.3f}), "
              f"{summary['seconds']} s; train on it with `bench victim --algorithm {args.algorithm} --scale mini "
              f"--attack {summary['name']} --results results/parity`")
        return 0
    if args.what == "victim":
        from .e2e import reference_victim

        record = reference_victim(reference, args.attack, args.algorithm, seed=args.seed, data_root=args.data_root,
                                  store=args.store, results=args.results, workers=args.workers)
        m = record["metrics"]["cifar10"]
        print(f"their {args.algorithm} victim on {args.attack} (seed {args.seed}): probe best {m['probe_best']:.2f}, "
              f"final {m['probe_final']:.2f}, kNN {m['knn']:.2f}; train {record['timing']['train_s']} s")
        return 0
    if args.what == "augment":
        import json

        from .augment_gap import augment_gap

        print(json.dumps(augment_gap(reference, data_root=args.data_root, store=args.store), indent=1))
        return 0
    from .steps import steps_command

    return steps_command(reference, write=args.write, only=args.only)


def add_parity_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parity", help="run the authors' code beside ours: step-level goldens and end-to-end runs "
                       "at the mini scale (docs/parity.md)")
    p.add_argument("what", choices=["check", "poison", "victim", "steps", "table", "augment"])
    p.add_argument("--reference", metavar="DIR", help="checkout of kaiwenzha/contrastive-poisoning at 628838c with "
                   "its kornia-pil submodule (default: $CP_REFERENCE)")
    p.add_argument("--attack", default="cp-c", help="poison: cp-c or cp-s; victim: our poison's row (none, cp-c, "
                   "cp-s, cp-c@moco, ext:NAME)")
    p.add_argument("--algorithm", default="simclr", choices=["simclr", "moco", "byol"])
    p.add_argument("--warmup", choices=["on", "off"], help="poison: the attacker's warm-up (default: as our mini "
                   "scale, on for MoCo v2 only)")
    p.add_argument("--seed", type=int, default=1112)
    p.add_argument("--workers", type=int, default=0, help="victim: DataLoader workers of their PIL pipeline")
    p.add_argument("--results", metavar="DIR", default="results/parity", help="victim: where its record goes")
    p.add_argument("--write", action="store_true", help="steps: write the goldens (tests/golden/) from the reference")
    p.add_argument("--only", nargs="+", metavar="CASE", help="steps: only these cases")
    p.set_defaults(func=cmd_parity)
