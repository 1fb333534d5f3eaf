"""``bench list``: the architectures (parameters, GFLOPs) and datasets in the registries.

``bench list --init-stats`` prints instead the initialisation statistics of the matching architectures
(architectures/_init_stats.py; the table of ``python benchmarks/init_stats.py``).
"""

from __future__ import annotations

import argparse

#: ``--width`` and ``--size`` when not given: (listing, init statistics).
WIDTH, SIZE = (32, 8), (256, 64)


def cmd_init_stats(args: argparse.Namespace) -> int:
    from bench.architectures import list_models
    from bench.architectures._init_stats import format_table, header, measure

    width = WIDTH[1] if args.width is None else args.width
    size = SIZE[1] if args.size is None else args.size
    settings = {"width": width, "depth": args.depth, "size": size, "in_channels": args.in_channels}
    print(header(**settings))
    print(format_table(measure(list_models(args.pattern), **settings)))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    if args.init_stats:
        return cmd_init_stats(args)
    import torch

    from bench.architectures import ARCHITECTURES, list_models
    from bench.architectures._blocks import count_macs, count_parameters
    from bench.datasets import DATASETS, list_datasets

    width = WIDTH[0] if args.width is None else args.width
    size = SIZE[0] if args.size is None else args.size
    print(f"Architectures (in_channels={args.in_channels}, width={width}, depth={args.depth}, {size}x{size} input):")
    names = list_models(args.pattern)
    wn = max([16, *(len(n) for n in names)])  # columns as wide as the longest name, at least the old widths
    wd = max([24, *(len(ARCHITECTURES.display_name(n)) for n in names)])
    print(f"  {'name':<{wn}} {'display name':<{wd}} {'params':>12} {'GMACs':>9} {'GFLOPs':>9}  in the paper")
    for name in names:
        with torch.device("meta"):
            model = ARCHITECTURES.create(name, in_channels=args.in_channels, classes=1, width=width, depth=args.depth)
        macs = count_macs(model, args.in_channels, size) / 1e9
        paper = ", ".join(f"Table {t.removeprefix('table')}" for t in sorted(ARCHITECTURES.get(name).paper_rows))
        print(
            f"  {name:<{wn}} {ARCHITECTURES.display_name(name):<{wd}} {count_parameters(model):>12,} "
            f"{macs:>9.3f} {2 * macs:>9.2f}  {paper}".rstrip()
        )
    print("  (also: smp:<Arch>:<encoder>, any segmentation-models-pytorch model, e.g. smp:Unet:resnet34)")
    print("\nDatasets:")
    for name in list_datasets():
        cls = DATASETS.get(name).factory
        aliases = DATASETS.get(name).aliases
        print(
            f"  {name:<10} {cls.display_name:<12} {cls.modality:<24} channels={cls.channels} "
            f"paper images={cls.paper_count}" + (f"  alias: {', '.join(aliases)}" if aliases else "")
        )
        for option in getattr(cls, "OPTIONS", ()):
            print(f"      --dataset-option {name}.{option.describe()}")
    return 0


def add_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", default="*", help="wildcard over architecture names (default: all)")
    p.add_argument(
        "--size", type=int, default=None, help=f"input size for GFLOPs (default {SIZE[0]}; {SIZE[1]} with --init-stats)"
    )
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--width", type=int, default=None, help=f"default {WIDTH[0]} ({WIDTH[1]} with --init-stats)")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument(
        "--init-stats",
        action="store_true",
        help="print instead, for each matching architecture at its default init in train mode, one forward and "
        "backward pass on a seeded synthetic batch of 4: block-output and logits std, BCE, gradient norm per stage",
    )
