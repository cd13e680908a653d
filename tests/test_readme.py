"""The README's set-up commands are the ones CI runs and the CLI accepts."""
from __future__ import annotations

import re

from conftest import REPO

from benchmark.cli import build_parser


def _bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_install_and_test_command():
    first = _bash_blocks()[0].strip()
    assert "pytest" in first and "pip install" in first
    ci_lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert first in ci_lines


def test_readme_main_job_parses():
    second = _bash_blocks()[1].strip().split("&&")[-1].split()
    assert second[:2] == ["bench", "run"] and "--scale" in second and "smoke" in second
    build_parser().parse_args(second[1:])
