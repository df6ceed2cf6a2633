"""Record the shipped chip-model trace: the chip-trained GPT continues a prompt greedily (its
own attention, the chip's numeric model) and every position's q, k, v and attention output go
into a .gctrace with the model's learned per-head scalers.

    python examples/record_chip_trace.py [-o traces/chipgpt-shakespeare.gctrace]

Replay it like any trace: gcsim run traces/chipgpt-shakespeare.gctrace -m chipgpt
"""
import argparse
import sys

from gcsim.llm.loop import ChipGPTModel, model_hardware
from gcsim.llm.record import record_model_trace

PROMPT = "ROMEO:\nBut soft, what light through yonder window breaks?\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default="traces/chipgpt-shakespeare.gctrace")
    p.add_argument("--weights", default="chip", help="chip-model weights (default: the shipped ones)")
    p.add_argument("--new", type=int, default=198,
                   help="characters to generate (default: %(default)s; prompt + new = 256, the window)")
    args = p.parse_args(argv)
    model = ChipGPTModel(args.weights)
    hw = model_hardware(model)
    cmd = "python examples/record_chip_trace.py " + " ".join(argv if argv is not None else sys.argv[1:])
    path = record_model_trace(args.out, model, hw, PROMPT, args.new, command=cmd.strip())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
