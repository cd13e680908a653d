#!/usr/bin/env bash
# Install the Debian packages that slurm/local-cluster.sh needs: slurm-wlm (slurmctld, slurmd and the
# clients sinfo/squeue/sbatch/scontrol/scancel) and munge (Slurm's authentication daemon).
# Idempotent, quiet and non-interactive; exits 0 at once when everything is already installed.
# Needs root (or sudo) and the Debian package registry. CI calls it before the tests; then
# `eval "$(slurm/local-cluster.sh up)"` starts the cluster (the tests' fixture does that by itself).
set -euo pipefail

missing=()
for bin in slurmctld slurmd slurmstepd munged sinfo squeue sbatch scontrol scancel munge unmunge; do
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ] && [ ! -x "/usr/bin/$bin" ]; then
        missing+=("$bin")
    fi
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps.sh: slurm-wlm and munge are already installed"
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-deps.sh: missing ${missing[*]}; installing them needs root (or sudo)" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps.sh: apt-get not found; install Slurm (slurmctld, slurmd, clients) and munge by hand" >&2
    exit 1
fi

log="$(mktemp -t cp-bench-install-deps.XXXXXX.log)"
trap 'rm -f "$log"' EXIT
run_quiet() {
    if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive "$@" >>"$log" 2>&1; then
        echo "install-deps.sh: failed: $*" >&2
        tail -n 40 "$log" >&2
        exit 1
    fi
}
run_quiet apt-get update -qq
run_quiet apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    slurm-wlm munge
echo "install-deps.sh: installed slurm-wlm and munge ($(/usr/sbin/slurmctld -V 2>/dev/null || echo 'version unknown'))"
