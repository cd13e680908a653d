"""`bench tables` and `bench leaderboard`: rebuild the tables and the leaderboard from the records."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..records import results_root
from ..report.tables import FORMATS, METRICS
from ..specs import SCALES

LEADERBOARD_FORMATS = ("md", "html", "json")


def cmd_tables(args: argparse.Namespace) -> int:
    """Print the grid's table(s) in --format, and write nothing. With --write (or --out DIR), also regenerate
    the files: every table's <grid>.md, .tex and .csv and summary.csv, all together (default folder:
    <results>/tables/<scale>/)."""
    from ..grids import GRIDS
    from ..report.tables import build_tables, render, write_tables

    GRIDS.get(args.grid)  # an unknown grid lists the valid ones
    results = results_root(args.results)
    tables = build_tables(args.grid, args.scale, results, args.metric)
    print(render(tables, args.format), end="")
    if not (args.write or args.out):
        return 0
    folder = Path(args.out) if args.out else results / "tables" / args.scale
    written = write_tables(tables, folder)
    if args.format != "csv":  # keep the CSV on stdout clean for pipes
        print(f"\nwrote {len(written)} files under {folder}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Print the leaderboard in --format (Markdown, HTML or JSON) and write <results>/leaderboard.md, .html and
    .json."""
    from ..report.leaderboard import build_leaderboard, render_html, render_json, render_markdown, write_leaderboard

    results = results_root(args.results)
    lb = build_leaderboard(results, args.scale, args.metric)
    print({"md": render_markdown, "html": render_html, "json": render_json}[args.format](lb), end="")
    written = write_leaderboard(lb, results)
    if args.format != "json":  # keep the JSON on stdout clean for pipes
        print(f"\nwrote {', '.join(map(str, written))}")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    """Options of both commands (added per parser: cli/main.py already passes `parents` to add_parser)."""
    p.add_argument("--scale", default="mini", choices=SCALES)
    p.add_argument("--results", metavar="DIR", help="results folder (default: $BENCH_RESULTS or ./results)")
    p.add_argument("--metric", default="probe_best", choices=METRICS,
                   help="probe protocol of contrastive victims (default: probe_best, the paper's); "
                        "supervised victims always report their classifier's test accuracy")


def add_report_commands(sub: argparse._SubParsersAction) -> None:
    """Add `tables` and `leaderboard` to the `bench` sub-commands."""
    p = sub.add_parser("tables", help="rebuild a grid's table(s) from the records, "
                       "ours beside the paper's, with Kendall's tau and the mean difference")
    _add_common(p)
    p.add_argument("--grid", required=True, help="a grid name, or `all` for every table")
    p.add_argument("--format", default="md", choices=FORMATS)
    p.add_argument("--write", action="store_true", help="also regenerate the files (md, tex, csv and summary.csv, "
                   "all together) under <results>/tables/<scale>/; without it nothing is written")
    p.add_argument("--out", metavar="DIR", help="write the files into DIR instead (implies --write)")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("leaderboard", help="rank every attack per victim and, overall, on a fixed panel of "
                       "victims by its worst-case damage; writes leaderboard.md, .html and .json")
    _add_common(p)
    p.add_argument("--format", default="md", choices=LEADERBOARD_FORMATS, help="what is printed (default: md)")
    p.set_defaults(func=cmd_leaderboard)
