"""``bench list``: the architectures (parameters, GFLOPs) and datasets in the registries.

At the default settings the architectures' counts come from the registry's stored metadata
(``bench/data/architectures.json``, computed by ``architectures/_metadata.py``), so listing imports no
torch; other settings build the networks (on the meta device) and count them.

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
    width = WIDTH[0] if args.width is None else args.width
    size = SIZE[0] if args.size is None else args.size
    print(f"Architectures (in_channels={args.in_channels}, width={width}, depth={args.depth}, {size}x{size} input):")
    rows = stored_rows(args.pattern, args.in_channels, width, args.depth, size)
    if rows is None:  # other settings than the stored counts' (or a name they lack): build the networks
        rows = counted_rows(args.pattern, args.in_channels, width, args.depth, size)
    wn = max([16, *(len(r[0]) for r in rows)])  # columns as wide as the longest name, at least the old widths
    wd = max([24, *(len(r[1]) for r in rows)])
    print(f"  {'name':<{wn}} {'display name':<{wd}} {'params':>12} {'GMACs':>9} {'GFLOPs':>9}  in the paper")
    for name, shown, params, macs, paper_rows in rows:
        paper = ", ".join(f"Table {t.removeprefix('table')}" for t in sorted(paper_rows))
        gmacs = macs / 1e9
        print(f"  {name:<{wn}} {shown:<{wd}} {params:>12,} {gmacs:>9.3f} {2 * gmacs:>9.2f}  {paper}".rstrip())
    print("  (also: smp:<Arch>:<encoder>, any segmentation-models-pytorch model, e.g. smp:Unet:resnet34)")
    print("\nDatasets:")
    from bench.datasets import DATASETS, list_datasets

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


#: One row of the listing: name, display name, parameters, MACs, the paper's tables it is in.
Row = tuple[str, str, int, int, dict[str, int]]


def stored_rows(pattern: str, in_channels: int, width: int, depth: int, size: int) -> list[Row] | None:
    """The listing from the registry's stored metadata (no torch), or None when the settings are not
    those it was counted at, or the registry is loaded in this process (it may hold more entries)."""
    import fnmatch
    import sys

    from bench.registry import stored_metadata

    stored = stored_metadata("architecture")
    wanted = {"in_channels": in_channels, "width": width, "depth": depth, "size": size}
    if not stored or stored["counted_at"] != wanted or "bench.architectures" in sys.modules:
        return None
    entries = stored["entries"]
    names = sorted(n for n in entries if fnmatch.fnmatchcase(n, pattern))
    return [
        (n, entries[n]["display_name"], entries[n]["parameters"], entries[n]["macs"], entries[n]["paper_rows"])
        for n in names
    ]


def counted_rows(pattern: str, in_channels: int, width: int, depth: int, size: int) -> list[Row]:
    """The listing counted now: each matching network built on the meta device and its MACs counted."""
    import torch

    from bench.architectures import ARCHITECTURES, list_models
    from bench.architectures._blocks import count_macs, count_parameters

    rows = []
    for name in list_models(pattern):
        with torch.device("meta"):
            model = ARCHITECTURES.create(name, in_channels=in_channels, classes=1, width=width, depth=depth)
        entry = ARCHITECTURES.get(name)
        rows.append(
            (
                name,
                ARCHITECTURES.display_name(name),
                count_parameters(model),
                count_macs(model, in_channels, size),
                dict(entry.paper_rows),
            )
        )
    return rows


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
