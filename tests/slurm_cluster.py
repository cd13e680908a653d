"""A real single-node Slurm cluster for tests: the session fixture ``slurm_cluster``.

Use it from a test file with ``from slurm_cluster import slurm_cluster`` (pytest puts tests/ on sys.path).
It skips, with the reason, where slurmctld, slurmd or munged are absent (run ``slurm/install-deps.sh``);
otherwise it runs ``slurm/local-cluster.sh up``, sets SLURM_CONF (and puts the cluster's ``sacct`` stand-in
first on PATH, so submitit reads real job states), yields the slurm.conf path, and at the end of the
session runs ``local-cluster.sh down`` if it was the one that started the cluster (a cluster that CI or a
developer started before the tests is left running).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "slurm" / "local-cluster.sh"
PROFILES = REPO / "slurm" / "profiles"
_SBIN = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
_DAEMONS = ("slurmctld", "slurmd", "munged")
_CLIENTS = ("sinfo", "squeue", "sbatch", "scontrol", "scancel")


def slurm_dir() -> Path:
    """The cluster's state folder (slurm.conf, logs, the sacct stand-in), as local-cluster.sh chooses it."""
    return Path(os.environ.get("SLURM_LOCAL_DIR") or "/tmp/cp-bench-slurm")


def missing_binaries() -> list[str]:
    return [b for b in _DAEMONS + _CLIENTS if shutil.which(b, path=_SBIN) is None]


def _run(cmd: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), cmd], capture_output=True, text=True, timeout=timeout)


def _conf_from(stdout: str) -> str | None:
    for line in stdout.splitlines():
        if line.startswith("export SLURM_CONF="):
            return line.split("=", 1)[1].strip().strip("'\"")
    return None


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Path]:
    """Start (or reuse) the local Slurm cluster; yield the path of its slurm.conf."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"Slurm/munge not installed (missing {', '.join(missing)}): run `bash slurm/install-deps.sh`")
    if os.geteuid() != 0 and _run("status", 30).returncode != 0:
        pytest.skip("starting the local Slurm cluster needs root (munged, slurmctld, slurmd)")
    was_up = _run("status", 30).returncode == 0
    up = _run("up", 120)
    conf = _conf_from(up.stdout)
    if up.returncode != 0 or conf is None:
        pytest.fail(f"slurm/local-cluster.sh up failed (rc={up.returncode}):\n{up.stdout}\n{up.stderr}")
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ["SLURM_CONF"] = conf
    os.environ["PATH"] = os.pathsep.join([str(Path(conf).parent / "bin"), os.environ.get("PATH", "")])
    try:
        yield Path(conf)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if not was_up:
            down = _run("down", 120)
            if down.returncode != 0:
                print(f"slurm/local-cluster.sh down failed (rc={down.returncode}):\n{down.stdout}\n{down.stderr}")


def load_profile(name: str) -> dict:
    """A profile of slurm/profiles/ (``local``, ``example-cluster``) as a dict of its TOML keys."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    with open(PROFILES / f"{name}.toml", "rb") as f:
        return tomllib.load(f)


_GENERIC = {"timeout_min", "mem_gb", "cpus_per_task", "gpus_per_node", "nodes", "tasks_per_node", "name"}


def auto_executor_parameters(profile: dict) -> dict:
    """Profile keys -> ``submitit.AutoExecutor.update_parameters`` keyword arguments.

    Generic keys pass as is, the others get the ``slurm_`` prefix; ``gpus_per_node = 0`` and an empty
    ``[additional_parameters]`` are dropped."""
    out = {}
    for key, value in profile.items():
        if key == "gpus_per_node" and not value:
            continue
        if key == "additional_parameters" and not value:
            continue
        out[key if key in _GENERIC else f"slurm_{key}"] = value
    return out
