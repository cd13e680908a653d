"""Slurm settings for `bench run --cluster slurm`: profiles (slurm/profiles/*.toml), flags, a reachability check."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tomllib
from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parents[1] / "slurm" / "profiles"
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
