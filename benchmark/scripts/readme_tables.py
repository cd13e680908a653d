"""Paste the generated mini tables into the README and docs/evidence.md between their markers (run after
`bench tables --grid all --scale mini --write`).

    python benchmark/scripts/readme_tables.py [--scale mini]

Each `<!-- table:GRID -->` ... `<!-- /table:GRID -->` block of those files is replaced by the table and the
agreement line of results/tables/<scale>/GRID.md, and a `<!-- claims -->` ... `<!-- /claims -->` block by
results/claims/<scale>.md (`bench claims --scale <scale> --write`); tests/test_readme.py checks that they agree.
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


def claims_block(results: Path, scale: str) -> str:
    return f"<!-- claims -->\n{(results / 'claims' / f'{scale}.md').read_text()}<!-- /claims -->"


def update(readme: str, scale: str, tables: Path) -> str:
    """`readme` with its table blocks (and claims block, from the results folder above `tables`) pasted."""
    def paste(match: re.Match) -> str:
        grid = match.group(1)
        body = table_block((tables / scale / f"{grid}.md").read_text())
        return f"<!-- table:{grid} -->\n{body}\n<!-- /table:{grid} -->"

    readme = re.sub(r"<!-- table:(\w+) -->.*?<!-- /table:\1 -->", paste, readme, flags=re.S)
    if "<!-- claims -->" in readme:
        readme = re.sub(r"<!-- claims -->.*?<!-- /claims -->", lambda _: claims_block(tables.parent, scale),
                        readme, flags=re.S)
    return readme


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="mini")
    args = parser.parse_args()
    for name in FILES:
        path = REPO / name
        path.write_text(update(path.read_text(), args.scale, REPO / "results" / "tables"))


if __name__ == "__main__":
    main()
