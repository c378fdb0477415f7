#!/usr/bin/env bash
# Usage: launch/compare-pytorch.sh [ROUNDS] [BATCH]
#
# Training-step throughput of abn against the PyTorch peer (python/abn_torch.py bench: the
# reference network with BN + in-place LeakyReLU, 2 threads) on this machine, with the same two threads: abn as one process with
# 2 threads (inplace and standard), and as launch/train.sh runs it by default, 2 MPI ranks of 1
# thread each (inplace). The machines are shared and noisy, so they alternate ROUNDS times
# (default 3), each round timing 20 steps of each after warm-up; the medians over all rounds
# are compared. Needs torch (`pip install torch`) and, for the second, mpirun.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rounds="${1:-3}" batch="${2:-128}"
peer="${PEER_SCRIPT:-$ROOT/python/abn_torch.py}"
[ -f "$peer" ] || { echo "compare-pytorch: peer script not found at $peer; set PEER_SCRIPT to another." >&2; exit 1; }
python3 -c "import torch" 2>/dev/null || { echo "compare-pytorch: torch is not installed; run: pip install torch" >&2; exit 1; }
ensure_binary
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: PyTorch, abn (inplace, standard), abn on 2 ranks (inplace)" >&2
    python3 "$peer" bench --norm bn --batch "$batch" --steps 20 --threads 2 | tail -n 1 >> "$results"
    OPENBLAS_NUM_THREADS=2 "$ABN" bench step --batch "$batch" --mode inplace --mode standard --repeats 20 --json >> "$results"
    (RANKS=2; HOSTFILE=""; THREADS=1; MPI_ARGS=(); run_mpi bench step --batch "$batch" --mode inplace --repeats 20 --json 2>/dev/null) >> "$results"
done
python3 - "$results" "$batch" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
peer = [r["step_s"] for r in rows if "peer" in r]
ours = {f"{m}, 1 rank x 2 threads": [r["step_s"] for r in rows if r.get("mode") == m and r.get("ranks") == 1]
        for m in ("inplace", "standard")}
ours["inplace, 2 ranks x 1 thread"] = [r["step_s"] for r in rows if r.get("mode") == "inplace" and r.get("ranks") == 2]
p = statistics.median(peer)
rounds = lambda times: " ".join(f"{t:.3f}" for t in times)
print(f"batch {sys.argv[2]}, {len(peer)} rounds, median step seconds (each round's in brackets):")
print(f"  PyTorch (BN + LeakyReLU, 2 threads) {p:.4f} s   {int(sys.argv[2]) / p:7.1f} images/s   [{rounds(peer)}]")
for mode, times in ours.items():
    m = statistics.median(times)
    print(f"  abn {mode:<31} {m:.4f} s   {int(sys.argv[2]) / m:7.1f} images/s   throughput {p / m:.3f} x PyTorch   [{rounds(times)}]")
EOF
