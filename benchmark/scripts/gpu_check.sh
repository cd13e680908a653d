#!/usr/bin/env bash
# One short GPU check (a lent GPU node, or any CUDA machine with torch): smoke-scale training of every
# algorithm on CUDA with bf16 autocast, `bench perf train` at the paper's batch size, `bench perf attack`
# (CP-S) at the paper scale, every attack family end to end at the smoke scale, and where a step's time
# goes (gpu_profile.py). Generated images: no data set needed.
# Usage: bash benchmark/scripts/gpu_check.sh   (writes logs and records under $OUT, default /tmp/gpu-check)
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 
export BENCH_STORE=/tmp/gpu-check-store BENCH_RESULTS=/tmp/gpu-check-results

n=0
step() {  # progress bars go to $OUT/step-N.err, the results to stdout
  n=$((n + 1)); echo; echo "=== $* ==="; local t0=$SECONDS
  timeout 240 "$@" 2>"$OUT/step-$n.err"; local rc=$?
  [ $rc -eq 0 ] || tail -5 "$OUT/step-$n.err"
  echo "(exit $rc, $((SECONDS - t0)) s)"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())"
for algorithm in simclr moco byol supervised; do
  step python3 -m benchmark.cli.main victim --algorithm "$algorithm" --scale smoke --device cuda
done
step python3 -m benchmark.cli.main perf train --algorithm simclr --scale paper --batch-size 512 --synthetic --steps 10 --workers 8
step python3 -m benchmark.cli.main perf attack --attack cp-s --algorithm simclr --scale paper --synthetic --images 10240 --epochs 1
for pair in simclr:cp-s byol:cp-s moco:cp-c supervised:ue-s supervised:ap-t; do  # every attack family on CUDA
  step python3 -m benchmark.cli.main victim --algorithm "${pair%%:*}" --attack "${pair##*:}" --scale smoke --device cuda
done
python3 benchmark/scripts/gpu_profile.py
echo; echo "=== records of the CUDA smoke runs ==="
python3 - <<'PY'
import glob, json, os
for path in sorted(glob.glob(os.path.join(os.environ["BENCH_RESULTS"], "records", "smoke", "*.json"))):
    r = json.load(open(path))
    h = r.get("history") or [{}]
    m = r["metrics"][r["victim"]["dataset"]]
    print(f"{r['victim']['algorithm']:>10} {r['attack']:>6} on {r['device']}: loss {h[0].get('loss', float('nan')):.3f} -> "
          f"{h[-1].get('loss', float('nan')):.3f} over {len(h)} epochs, {h[-1].get('images_per_s', 0):.0f} img/s, "
          f"probe {m['probe_best']:.1f}, train {r['timing']['train_s']} s")
PY
