#!/usr/bin/env bash
# Usage: launch/compare-pytorch.sh [ROUNDS] [BATCH]
#
# Training-step throughput of abn against the PyTorch peer (../shared/peers/pytorch_reference_net.py,
# BN + LeakyReLU, 2 threads) on this machine. The machines are shared and noisy, so the two
# alternate ROUNDS times (default 3), each round timing 20 steps of each after warm-up; the
# medians over all rounds are compared. Needs torch (`pip install torch`).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
rounds="${1:-3}" batch="${2:-128}"
peer="${PEER_SCRIPT:-$ROOT/../shared/peers/pytorch_reference_net.py}"
[ -f "$peer" ] || { echo "compare-pytorch: peer script not found at $peer; set PEER_SCRIPT." >&2; exit 1; }
python3 -c "import torch" 2>/dev/null || { echo "compare-pytorch: torch is not installed; run: pip install torch" >&2; exit 1; }
ensure_binary
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-2}"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
    echo "round $round/$rounds: PyTorch, then abn (inplace, standard)" >&2
    python3 "$peer" --norm bn --batch "$batch" --steps 20 --threads "$OPENBLAS_NUM_THREADS" | tail -n 1 >> "$results"
    "$ABN" bench step --batch "$batch" --mode inplace --mode standard --repeats 20 --json >> "$results"
done
python3 - "$results" "$batch" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
peer = [r["step_s"] for r in rows if "peer" in r]
ours = {m: [r["step_s"] for r in rows if r.get("mode") == m] for m in ("inplace", "standard")}
p = statistics.median(peer)
rounds = lambda times: " ".join(f"{t:.3f}" for t in times)
print(f"batch {sys.argv[2]}, {len(peer)} rounds, median step seconds (each round's in brackets):")
print(f"  PyTorch (BN + LeakyReLU)  {p:.4f} s   {int(sys.argv[2]) / p:7.1f} images/s   [{rounds(peer)}]")
for mode, times in ours.items():
    m = statistics.median(times)
    print(f"  abn {mode:<21} {m:.4f} s   {int(sys.argv[2]) / m:7.1f} images/s   throughput {p / m:.3f} x PyTorch   [{rounds(times)}]")
EOF
