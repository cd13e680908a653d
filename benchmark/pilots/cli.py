"""`bench pilot`: the pilot study of the evidence scale (issue 39; docs/evidence.md, "Pilots").

  bench pilot list                                   the built-in pilots and what each changes from mini
  bench pilot run NAME [--stages ...]                run (or resume) a built-in pilot's stages
  bench pilot run NAME --set width=0.25 --set ...    a new pilot: mini's settings with these changed
  bench pilot table                                  results/pilots/table.md and the damage-cost figure
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .config import PILOTS, parse_overrides, resolve

RESULTS = Path("results") / "pilots"


def cmd_pilot(args: argparse.Namespace) -> int:
    results = Path(args.results)
    if args.what == "list":
        print(f"{'pilot':<12} {'changes from mini':<58} {'est. CPU min: victim / CP-C / CP-S':<36} note")
        for config in PILOTS.values():
            changes = ", ".join(f"{k}={v}" for k, v in config.changes().items()) or "(none)"
            est = config.estimated_minutes()
            cost = f"{est['victim']:.0f} / {est['cp-c']:.0f} / {est['cp-s']:.0f}"
            print(f"{config.name:<12} {changes:<58} {cost:<36} {config.note}")
        print("(estimates: the mini scale's measured minutes scaled by FLOPs and work; one thread)")
        return 0
    if args.what == "table":
        from ..report.figures import FigureSkipped
        from .run import read_summaries
        from .table import render, write_figure, write_table

        summaries = read_summaries(results)
        if not summaries:
            print(f"bench pilot table: no pilot summary under {results}; run `bench pilot run NAME` first",
                  file=sys.stderr)
            return 1
        print(render(summaries), end="")
        print(f"written to {write_table(summaries, results / 'table.md')}")
        try:
            print("figure:", ", ".join(str(p) for p in write_figure(summaries, Path(args.figures))))
        except FigureSkipped as why:
            print(f"figure skipped: {why}")
        return 0
    if not args.name:
        print("bench pilot run: name a pilot (`bench pilot list`), or a new name with --set key=value",
              file=sys.stderr)
        return 2
    try:
        config = resolve(args.name, parse_overrides(args.set or []))
    except ValueError as err:
        print(f"bench pilot run: {err}", file=sys.stderr)
        return 2
    from .run import PilotRun

    run = PilotRun(config, results=results, store=args.store, data_root=args.data_root, device=args.device,
                   mini_results=args.mini_results)
    try:
        summary = run.run(tuple(args.stages), tuple(args.seeds))
    except ValueError as err:
        print(f"bench pilot run: {err}", file=sys.stderr)
        return 2
    print(f"pilot {config.name} ({summary['data']}): clean {summary['clean']}, floor {summary['untrained']}; "
          + "; ".join(f"{a} damage {e['damage']}" for a, e in summary["attacks"].items())
          + f"; summary {run.summary_path}")
    return 0


def add_pilot_command(sub: argparse._SubParsersAction) -> None:
    from .run import DEFAULT_STAGES, STAGES

    p = sub.add_parser("pilot", help="the evidence-scale pilots: a CPU-sized setting per run, clean and CP "
                       "victims with their cost and shortcut diagnostics (docs/evidence.md)")
    p.add_argument("what", choices=["list", "run", "table"])
    p.add_argument("name", nargs="?", help="run: a built-in pilot, or a new name with --set")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="run: a setting changed from mini (width, input_px, per_class, classes, victim_epochs, "
                        "victim_batch, supervised_epochs, cp_c_epochs, cp_c_steps, cp_c_num_steps, cp_s_epochs, "
                        "cp_s_num_steps)")
    p.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES), choices=STAGES,
                   help=f"run: which stages (default: {' '.join(DEFAULT_STAGES)})")
    p.add_argument("--seeds", nargs="+", type=int, default=[1112], metavar="SEED",
                   help="run: victim seeds of the clean and attacked victims (poisons and floor: 1112); the "
                        "summary gives each seed's damage and their mean and spread")
    p.add_argument("--results", metavar="DIR", default=str(RESULTS), help="pilot records and summaries")
    p.add_argument("--mini-results", metavar="DIR", default="results", help="run mini: the mini scale's results "
                   "folder, whose records the mini pilot reads (and adds to)")
    p.add_argument("--figures", metavar="DIR", default="results/figures", help="table: where the figure goes")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_pilot)
