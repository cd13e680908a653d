"""Records: one small JSON file per finished victim run, written atomically under results/records/<scale>/."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from victims.atomic import write_text_atomic

RECORD_FORMAT = 1
RESULTS_ENV = "BENCH_RESULTS"


def results_root(results: str | os.PathLike | None = None) -> Path:
    """`--results DIR`, else `$BENCH_RESULTS`, else ./results."""
    return Path(results or os.environ.get(RESULTS_ENV) or "results").expanduser().resolve()


def record_path(results: Path, scale: str, key: str) -> Path:
    return results / "records" / scale / f"{key[:20]}.json"


def write_json_atomic(path: Path, obj: dict) -> None:
    """Write `obj` as indented JSON to `path` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def read_record(path: Path) -> dict | None:
    """A record, or None when absent or unreadable (a corrupt file is treated as not done)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if record.get("format") == RECORD_FORMAT and "metrics" in record else None


def read_records(results: Path, scale: str) -> list[dict]:
    folder = results / "records" / scale
    return [r for p in sorted(folder.glob("*.json")) if (r := read_record(p)) is not None]


def environment() -> dict:
    """Hardware, library versions and the git revision, for provenance."""
    import kornia
    import torchvision

    hardware = {"platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        hardware["gpu"] = torch.cuda.get_device_name(0)
        hardware["gpu_count"] = torch.cuda.device_count()
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "torchvision": torchvision.__version__, "kornia": kornia.__version__}
    return {"hardware": hardware, "versions": versions, "git": git_revision()}


def git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if rev.returncode:
        return None
    return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
