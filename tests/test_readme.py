"""The README's set-up commands are the ones CI runs and the CLI accepts."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from conftest import REPO

from benchmark.cli.main import build_parser


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


def test_the_smoke_scales_outputs_are_ignored_and_the_evidence_scales_tracked():
    """The README's main job (`bench run --scale smoke`) writes its records under results/records/smoke/, which git
    ignores (as the smoke tables and claims), so a fresh clone stays clean; the mini scale's are committed."""
    from benchmark.records import record_path

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    paths = {scale: [str(record_path(REPO / "results", scale, "0" * 20).relative_to(REPO)),
                     f"results/tables/{scale}/effectiveness.md", f"results/claims/{scale}.json"]
             for scale in ("smoke", "mini")}
    ignored = subprocess.run(["git", "check-ignore", *paths["smoke"], *paths["mini"]], cwd=REPO, capture_output=True,
                             text=True).stdout.split()
    assert sorted(ignored) == sorted(paths["smoke"])


def test_readme_and_evidence_show_the_generated_tables():
    """The README's effectiveness table and docs/evidence.md's copies of the two headline tables are the ones
    `bench tables --scale mini` wrote from the committed records (`python benchmark/scripts/readme_tables.py`
    pastes them)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_tables", REPO / "benchmark" / "scripts" / "readme_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, grids in (("README.md", ("effectiveness",)),
                        ("docs/evidence.md", ("effectiveness", "transfer_algorithms"))):
        text = (REPO / name).read_text()
        for grid in grids:
            assert f"<!-- table:{grid} -->" in text
            body = module.table_block((REPO / "results" / "tables" / "mini" / f"{grid}.md").read_text())
            assert body.count("|") > 20 and "Agreement with the paper" in body
            assert f"<!-- table:{grid} -->\n{body}\n<!-- /table:{grid} -->" in text, \
                f"{name}'s {grid} table differs from results/tables/mini/{grid}.md: run benchmark/scripts/readme_tables.py"
        assert module.update(text, "mini", REPO / "results" / "tables") == text
    readme = (REPO / "README.md").read_text()
    assert module.claims_block(REPO / "results", "mini") in readme, \
        "the README's claims differ from results/claims/mini.md: run bench claims --write, then readme_tables.py"
