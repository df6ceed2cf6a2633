"""Examples printed at the end of every command's --help (attached in gcsim.cli.build_parser).

Each is a command line that works from a clone as written (paths relative to it)."""

EXAMPLES = {
    "run": """\
  gcsim run                                    # shipped SmolLM2 trace on models/smollm2.yaml
  gcsim run traces/smollm2-135m-default.gctrace -m smollm2 --steps 10 -o out/ten
  gcsim run --set shape.window=256 --timing-only -o out/w256   # a what-if, timing and energy only""",
    "validate": """\
  gcsim validate                               # exit 0: simulator = reference model, stage by stage
  gcsim validate --steps 8 --json out/validate.json
  gcsim validate --set numerics.q_levels=null  # quantization off""",
    "profile": """\
  gcsim profile                                # summary per component kind
  gcsim profile --by-layer                     # every component of every layer
  gcsim profile out/gpt2.gctrace -m stall-link --timeline -o out/link  # trace: gcsim trace synth""",
    "paper": """\
  gcsim paper                                  # paper-gpt2 beside the paper's budgets
  gcsim paper --set timing.clock_mhz=500 --steps 1024""",
    "reference": """\
  gcsim reference --variant softmax -o out/softmax
  gcsim reference --variant linear --steps 20 --set numerics.retention.mode=off""",
    "describe": """\
  gcsim describe paper-gpt2                    # the resolved description (extends: applied)
  gcsim describe stall-link --set periphery.sequences=4
  gcsim describe --fields                      # every field with unit, range and default""",
    "sweep": """\
  gcsim sweep my-sweep.yaml -o out/sweep -j 2  # the spec format: docs/sweep.md
  gcsim sweep examples/sweep_eval_noise.yaml -o out/sweep-noise  # mode eval: accuracy per point""",
    "system": """\
  gcsim system                                 # GPT-2, SmolLM2, Llama-3-8B beside an RTX 4090
  gcsim system -m smollm2 --device jetson-nano --contexts 256,1024,4096 -o out/system-nano
  gcsim system --set host.launch_overhead_ns=1000 --sequences 1,8,64  # a host calibrated your way""",
    "serve": """\
  gcsim serve                                  # GPT-2 beside an RTX 4090, 8 K/V banks, Poisson 50..250/s
  gcsim serve --rates 100,200 --prompt 64:512 --output 16:64 --set periphery.admission=shortest_first
  gcsim serve --requests my-requests.csv -o out/serve-csv   # rows: arrival_ns,prompt_tokens,output_tokens""",
    "decode": """\
  gcsim decode --prompt "The history of Paris" -n 32        # SmolLM2 with the chip in its loop
  gcsim decode --prompt "Once upon" -n 16 --chip-layers 0,1""",
    "eval": """\
  gcsim eval -o out/eval                       # 64 held-out windows: perplexity, agreement, KL, cost
  gcsim eval --windows all -o out/eval-all     # the whole held-out text
  gcsim eval --chip-layers 0 --no-progress -o out/eval-l0
  gcsim eval --windows 8 --read-sigma 0,0.1,0.2 --cell-sigma 0,0.1,0.2 --plots -o out/eval-noise
  gcsim eval --windows 2 --set numerics.noise.write_sigma_v=0.03 -o out/eval-w  # noise in the simulator too""",
    "train": """\
  gcsim train softmax -o out/chipgpt           # needs the [train] extra (JAX)""",
    "adapt": """\
  gcsim adapt -o out/adapt --max-minutes 20    # rerun to resume; needs the [train] extra (JAX)
  gcsim adapt -o out/adapt --ablation          # and the ablation's arms, evaluated on the chip""",
    "trace": """\
  gcsim trace record --prompt "The history of Paris" --new 64 -o out/paris.gctrace
  gcsim trace synth --model paper-gpt2 --steps 1100 --seed 0 -o out/gpt2.gctrace
  gcsim trace info traces/smollm2-135m-default.gctrace""",
    "trace record": """\
  gcsim trace record --prompt "The history of Paris" --new 64 -o out/paris.gctrace
  gcsim trace record --prompt-file prompt.txt --new 512 --no-stop -o out/long.gctrace""",
    "trace synth": """\
  gcsim trace synth --model paper-gpt2 --steps 1100 --seed 0 -o out/gpt2.gctrace""",
    "trace upgrade": """\
  gcsim trace upgrade old.gctrace -o new.gctrace""",
    "trace info": """\
  gcsim trace info traces/smollm2-135m-default.gctrace
  gcsim trace info traces/smollm2-135m-default.gctrace --json""",
}


def attach(parser, prefix: str = "") -> None:
    """Add 'examples:' to the epilog of every subcommand parser under `parser`."""
    import argparse
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                key = f"{prefix}{name}"
                text = EXAMPLES.get(key)
                if text:
                    sub.epilog = ((sub.epilog + "\n\n") if sub.epilog else "") + "examples:\n" + text
                    sub.formatter_class = argparse.RawDescriptionHelpFormatter
                attach(sub, f"{key} ")
