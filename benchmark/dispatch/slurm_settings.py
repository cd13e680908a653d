"""Slurm settings for `bench run --cluster slurm`: profiles (slurm/profiles/*.toml), flags, each job's time
limit and memory, and the checks made before anything is submitted (controller, partition, account, QOS)."""
from __future__ import annotations

import argparse
import getpass
import math
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from .plan import Job

PROFILE_DIR = Path(__file__).resolve().parents[2] / "slurm" / "profiles"
KEYS = ("partition", "gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min", "account", "qos",
        "signal_delay_s", "array_parallelism", "additional_parameters")


def load_profile(name_or_path: str) -> dict:
    """A profile by name (slurm/profiles/<name>.toml) or path; unknown keys are an error."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))
        raise SystemExit(f"bench run: no Slurm profile {name_or_path!r}; profiles in {PROFILE_DIR}: "
                         f"{', '.join(names) or '(none)'}, or give a path to a .toml file")
    profile = tomllib.loads(path.read_text())
    unknown = sorted(set(profile) - set(KEYS))
    if unknown:
        raise SystemExit(f"bench run: unknown keys {unknown} in {path}; valid keys: {', '.join(KEYS)}")
    return profile


def slurm_parameters(args: argparse.Namespace) -> dict:
    """Profile values overridden by flags; submitit requeues on time-out after `signal_delay_s`."""
    params = {"signal_delay_s": 120}
    if getattr(args, "profile", None):
        params.update(load_profile(args.profile))
    flags = {"partition": args.partition, "timeout_min": args.time, "mem_gb": args.mem_gb,
             "cpus_per_task": args.cpus, "account": args.account, "qos": args.qos}
    params.update({k: v for k, v in flags.items() if v is not None})
    return params


def check_controller() -> None:
    """Fail before submitting anything when no Slurm controller answers."""
    if shutil.which("scontrol") is None:
        raise SystemExit("bench run: Slurm's client tools (scontrol, sbatch) are not installed here; install "
                         "them (Debian: slurm/install-deps.sh) or use --cluster local")
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        ping = None
    if ping is None or ping.returncode != 0 or "UP" not in ping.stdout:
        lines = [] if ping is None else (ping.stdout + ping.stderr).strip().splitlines()
        detail = "no answer within 20 s" if ping is None else (lines[-1] if lines else f"exit {ping.returncode}")
        raise SystemExit(f"bench run: the Slurm controller is not reachable ({detail}); check SLURM_CONF, or "
                         "start a local cluster with `slurm/local-cluster.sh up`")


# a job's time limit, where neither --time nor a profile sets one: twice its expected minutes plus 5, at
# least MIN_TIME_MIN and at most MAX_TIME_MIN (longer jobs requeue and resume from their checkpoint), and
# never over the partition's own limit
MIN_TIME_MIN, MAX_TIME_MIN = 10, 24 * 60
MEMORY_FLOOR_GB = 2  # an empty array (never submitted) asks for this


def job_request(jobs: Iterable[Job], params: dict, max_time_min: int | None = None) -> dict[str, int]:
    """What one submission (a job or a job array) asks for: `timeout_min` and `mem_gb` from the flags or the
    profile when they set them, else from the jobs' size at their scale (the largest job of an array)."""
    jobs = list(jobs)
    request = {}
    if params.get("timeout_min") is not None:
        request["timeout_min"] = int(params["timeout_min"])
    else:
        expected = max((j.expected_minutes for j in jobs), default=0.0)
        minutes = min(max(MIN_TIME_MIN, math.ceil(2 * expected + 5)), MAX_TIME_MIN)
        request["timeout_min"] = min(minutes, max_time_min) if max_time_min else minutes
    request["mem_gb"] = int(params["mem_gb"]) if params.get("mem_gb") is not None else \
        max((j.memory_gb for j in jobs), default=MEMORY_FLOOR_GB)
    return request


def parse_minutes(text: str) -> int | None:
    """Slurm's time format (`30`, `30:00`, `2:00:00`, `1-12:00:00`) in minutes; None for infinite/unknown."""
    text = text.strip()
    if not text or text.lower() in ("infinite", "unlimited", "n/a", "none"):
        return None
    try:
        days, _, rest = text.rpartition("-")
        days_min, parts = int(days or 0) * 1440, [int(x) for x in rest.split(":")]
    except ValueError:
        return None
    if days:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    elif len(parts) == 3:  # hours:minutes:seconds
        hours, minutes, seconds = parts
    else:  # minutes[:seconds]
        hours, (minutes, seconds) = 0, (parts + [0])[:2]
    return days_min + hours * 60 + minutes + (1 if seconds else 0)


def partitions() -> dict[str, int | None] | None:
    """Each partition this user may see (hidden ones too) -> its time limit in minutes (None: infinite); the
    default one first. None where sinfo is absent or fails."""
    if not shutil.which("sinfo"):
        return None
    try:
        out = subprocess.run(["sinfo", "-a", "-h", "-o", "%P|%l"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    if out.returncode != 0:
        return None
    found: dict[str, int | None] = {}
    for line in sorted(out.stdout.splitlines(), key=lambda ln: not ln.split("|")[0].endswith("*")):
        name, _, limit = line.strip().partition("|")
        if name:
            found.setdefault(name.rstrip("*"), parse_minutes(limit))
    return found


def _sacctmgr(*query: str) -> list[str] | None:
    """sacctmgr's answer, one value a line; None where there is no accounting database (or no sacctmgr)."""
    if not shutil.which("sacctmgr"):
        return None
    try:
        out = subprocess.run(["sacctmgr", "-n", "-P", *query], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None
    values = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return values if out.returncode == 0 and values else None


def check_submission(params: dict) -> int | None:
    """Fail before submitting anything when the partition (or the account, or the QOS, where Slurm has an
    accounting database) does not exist, or --time is over the partition's limit. Returns that limit in
    minutes (None: no limit, or sinfo is unavailable)."""
    found = partitions()
    if found is None:
        return None
    partition = params.get("partition")
    if partition is not None and partition not in found:
        raise SystemExit(f"bench run: no Slurm partition {partition!r}; valid partitions (sinfo): "
                         f"{', '.join(found) or '(none)'}")
    name = partition or next(iter(found), None)
    limit = found.get(name) if name else None
    if limit is not None and params.get("timeout_min") is not None and int(params["timeout_min"]) > limit:
        raise SystemExit(f"bench run: a time limit of {params['timeout_min']} min is over partition {name!r}'s "
                         f"limit of {limit} min; give --time {limit} or less (jobs requeue and resume)")
    for key, query in (("account", ("show", "assoc", f"user={getpass.getuser()}", "format=account")),
                       ("qos", ("show", "qos", "format=name"))):
        if params.get(key) is None:
            continue
        valid = _sacctmgr(*query)
        if valid is not None and params[key] not in valid:
            raise SystemExit(f"bench run: no Slurm {key} {params[key]!r} for this user; valid (sacctmgr): "
                             f"{', '.join(sorted(set(valid)))}")
    return limit
