"""How every registered architecture starts: activations, logits, loss and gradients at initialisation.

    python benchmarks/init_stats.py [PATTERN] [--width 8] [--size 64] [--depth 5] [--batch 4] [--seed 0]
                                    [--in-channels 3] [--markdown]

For each registry entry matching PATTERN (default all; open-ended ``smp:`` names are never listed), at its
default init, in train mode, one forward and backward pass on a seeded synthetic batch (``--batch`` uniform
random images of ``--size`` px and a mask of random blobs): the standard deviation of each encoder / decoder
block's output, of the logits, the initial BCE-with-logits and the gradient norm of the encoder, decoder and
head parameters (architectures/_init_stats.py). ``bench list --init-stats`` prints the same table;
``--markdown`` prints it as the Markdown table of docs/architectures.md ("Readings of the MLDR block").
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pattern", nargs="?", default="*", help="wildcard over architecture names (default: all)")
    p.add_argument("--width", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = p.parse_args(argv)

    from bench.architectures import list_models
    from bench.architectures._init_stats import format_table, header, measure

    settings = {
        "width": args.width,
        "depth": args.depth,
        "size": args.size,
        "batch": args.batch,
        "seed": args.seed,
        "in_channels": args.in_channels,
    }
    start = time.perf_counter()
    stats = measure(list_models(args.pattern), **settings)
    print(header(**settings))
    print(format_table(stats, markdown=args.markdown))
    print(f"({len(stats)} entries in {time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
