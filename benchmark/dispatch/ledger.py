"""The ledger of submissions: one small JSON file per submitted job under <store>/runs/<scale>/.

`bench run` writes an entry when it submits a job (executor, job id, log paths) and adds the last line of
its error when it sees the job fail; `bench status` and `bench cancel` read it.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..paths import store_root
from ..records import write_json_atomic
from .plan import Job


def ledger_dir(store, scale: str) -> Path:
    return store_root(store) / "runs" / scale


def ledger_path(store, scale: str, key: str) -> Path:
    return ledger_dir(store, scale) / f"{key[:20]}.json"


def write_ledger(store, scale: str, job: Job, handle: Any, cluster: str) -> Path:
    """Note that `job` was submitted as `handle` (a submitit job) on `cluster`; returns the entry's path."""
    path = ledger_path(store, scale, job.key)
    paths = handle.paths if hasattr(handle, "paths") else None
    write_json_atomic(path, {"job": job.key, "name": job.name, "kind": job.kind, "cluster": cluster,
                             "job_id": str(handle.job_id), "submitted": time.time(),
                             "stdout": str(paths.stdout) if paths else None,
                             "stderr": str(paths.stderr) if paths else None})
    return path


def read_ledger(store, scale: str, key: str) -> dict | None:
    """The ledger entry of the job `key`, or None when it was never submitted (or the entry is unreadable)."""
    try:
        return json.loads(ledger_path(store, scale, key).read_text())
    except (OSError, ValueError):
        return None


def record_failure(store, scale: str, job: Job, err: BaseException) -> str:
    """Keep the last line of a failed job's error in its ledger entry (for `bench status`); return it."""
    text = str(err).strip()
    line = text.splitlines()[-1][:200] if text else repr(err)
    entry = read_ledger(store, scale, job.key)
    if entry is not None:
        write_json_atomic(ledger_path(store, scale, job.key), {**entry, "error": line})
    return line
