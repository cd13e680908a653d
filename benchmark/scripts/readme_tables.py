"""Paste the generated mini tables into the README and docs/evidence.md between their markers (run after
`bench tables --grid all --scale mini --write`).

    python benchmark/scripts/readme_tables.py [--scale mini]

Each `<!-- table:GRID -->` ... `<!-- /table:GRID -->` block of those files is replaced by the table and the
agreement line of results/tables/<scale>/GRID.md; tests/test_readme.py checks that they agree.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FILES = ("README.md", "docs/evidence.md")


def table_block(generated: str) -> str:
    """The Markdown table and the agreement line of a generated table file."""
    lines = generated.splitlines()
    table = [line for line in lines if line.startswith("|")]
    agreement = [line for line in lines if line.startswith("Agreement with the paper")]
    return "\n".join(table + [""] + agreement)


def update(readme: str, scale: str, tables: Path) -> str:
    def paste(match: re.Match) -> str:
        grid = match.group(1)
        body = table_block((tables / scale / f"{grid}.md").read_text())
        return f"<!-- table:{grid} -->\n{body}\n<!-- /table:{grid} -->"

    return re.sub(r"<!-- table:(\w+) -->.*?<!-- /table:\1 -->", paste, readme, flags=re.S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    args = parser.parse_args()
    for name in FILES:
        path = REPO / name
        path.write_text(update(path.read_text(), args.scale, REPO / "results" / "tables"))


if __name__ == "__main__":
    main()
