"""``bench list``: the architectures (parameters, GFLOPs) and datasets in the registries."""

from __future__ import annotations

import argparse


def cmd_list(args: argparse.Namespace) -> int:
    import torch

    from bench.architectures import ARCHITECTURES, list_models
    from bench.architectures._blocks import count_macs, count_parameters
    from bench.datasets import DATASETS, list_datasets

    print(
        f"Architectures (in_channels={args.in_channels}, width={args.width}, depth={args.depth}, "
        f"{args.size}x{args.size} input):"
    )
    print(f"  {'name':<16} {'display name':<24} {'params':>12} {'GMACs':>9} {'GFLOPs':>9}  in the paper")
    for name in list_models(args.pattern):
        with torch.device("meta"):
            model = ARCHITECTURES.create(
                name, in_channels=args.in_channels, classes=1, width=args.width, depth=args.depth
            )
        macs = count_macs(model, args.in_channels, args.size) / 1e9
        paper = ", ".join(f"Table {t.removeprefix('table')}" for t in sorted(ARCHITECTURES.get(name).paper_rows))
        print(
            f"  {name:<16} {ARCHITECTURES.display_name(name):<24} {count_parameters(model):>12,} "
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
    p.add_argument("--size", type=int, default=256, help="input size for GFLOPs (default 256)")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=5)
