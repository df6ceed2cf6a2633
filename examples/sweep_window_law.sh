#!/usr/bin/env bash
# Window x cell law: make a 2,100-step synthetic GPT-2 trace (so windows up to 2,048 fill),
# sweep it on every core, then draw the Pareto front and the per-axis charts (they need the
# [plot] extra: pip install -e '.[plot]').
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
[ -f out/gpt2-2100.gctrace ] || gcsim trace synth --model paper-gpt2 --steps 2100 --seed 0 -o out/gpt2-2100.gctrace
gcsim sweep examples/sweep_window_law.yaml -o out/sweep-window-law "$@"
gcsim sweep plot out/sweep-window-law
python examples/sweep_table.py out/sweep-window-law shape.window numerics.cell_law latency_per_token_ns \
    energy_per_token_pj energy_item.phi_qk_pj full_window_steps out_rel_rmse_vs_softmax out_cosine_vs_softmax
