"""End-to-end curves of the chip beside an RTX 4090 against the 4090 alone, for GPT-2,
SmolLM2-135M and Llama-3-8B (the README's figure is made the same way by
`python docs/generate.py system-curves`).

    python examples/system_curves.py                 # writes out/system-curves.png
    python examples/system_curves.py -o out/x.png --device h100-sxm

The same as `gcsim system` (which also writes the table and a CSV), through the library.
Needs matplotlib: pip install -e '.[plot]' (without it, the script says so in one line and
exits with status 1, before any work).
"""
import argparse
import sys
from pathlib import Path

from gcsim import load_hardware
from gcsim.system.curves import break_even, curves, plot


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--out", default="out/system-curves.png")
    ap.add_argument("--device", default="rtx4090")
    args = ap.parse_args()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sys.exit("system_curves.py needs matplotlib: pip install -e '.[plot]' (or pip install matplotlib)")
    rows = []
    for name in ("paper-gpt2", "smollm2", "llama3-8b"):
        hw = load_hardware(name).derive(host={"device": args.device})
        mine = curves(hw)
        rows += mine
        at_window = next(r for r in mine if r["curve"] == "sequences" and r["sequences"] == 1)
        print(f"{name:<10} one sequence at its window ({at_window['context']}): speed-up {at_window['speedup']:.3f}x, "
              f"attention {100 * at_window['gpu_only_attention_share']:.1f} % of the GPU-only step; "
              f">= 1.1x from context {break_even(mine)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
