"""Training speed per architecture and numerics: images per second of one training step.

    python benchmarks/bench_steps.py --scale quick [--arch unet,mildnet] [--repeats 5] [--steps 5]
    python benchmarks/bench_steps.py --scale paper --repeats 3 --steps 1

For each architecture, one network per variant (same seed, same weights): ``fp32`` (the CPU default),
``bf16`` (``--set amp=bf16``: bf16 autocast), ``cl`` (``--set channels_last=on``) and ``bf16+cl``. A
call is ``--steps`` training steps (forward, BCE, backward, Adam) on one fixed batch of 4 images at the
scale's size (quick: 64 px, width 8; paper: 256 px, width 32; depth 5), through the harness's own
``precision_for`` / ``batch_loss``. Timing: ``benchmarks/timing.py`` (warm-up, rotating order, CPU and
wall time); speed-ups are medians of per-round CPU-time ratios against fp32. One torch thread.
"""

from __future__ import annotations

import argparse
import copy

import torch
from timing import cpu_name, interleaved, load_note, ratio

from bench.architectures import create_model
from bench.run.devices import precision_for
from bench.run.train import batch_loss

SCALES = {"quick": (64, 8), "paper": (256, 32)}
VARIANTS = {"fp32": ("off", "off"), "bf16": ("bf16", "off"), "cl": ("off", "on"), "bf16+cl": ("bf16", "on")}
ARCHS = ("unet", "residual_unet", "resdunet", "unetpp", "multiresunet", "mildnet", "unet_mlr", "mildnet_no_mlr")


def stepper(arch: str, size: int, width: int, amp: str, layout: str, steps: int, base: torch.nn.Module):
    prec = precision_for("cpu", amp, layout)
    model = copy.deepcopy(base).to(memory_format=prec.memory_format())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    crit = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, size, size, generator=g).to(memory_format=prec.memory_format())
    y = (torch.rand(4, 1, size, size, generator=g) > 0.5).float()

    def run() -> None:
        model.train()
        for _ in range(steps):
            with prec.autocast("cpu"):
                loss = batch_loss(model, x, y, crit)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=SCALES, default="quick")
    parser.add_argument("--arch", default=",".join(ARCHS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    size, width = SCALES[args.scale]
    print(
        f"# {args.scale}: {size} px, width {width}, depth 5, batch 4, {args.steps} step(s) per call, "
        f"{args.repeats} rounds; torch {torch.__version__}, 1 thread; {cpu_name()}; {load_note()} (start)"
    )
    print("| network | fp32 img/s (CPU) | fp32 img/s (wall) | bf16 | channels-last | bf16 + channels-last |")
    print("|---|---:|---:|---:|---:|---:|")
    for arch in args.arch.split(","):
        torch.manual_seed(0)
        base = create_model(arch, in_channels=3, classes=1, width=width, depth=5)
        cases = {
            name: stepper(arch, size, width, amp, layout, args.steps, base) for name, (amp, layout) in VARIANTS.items()
        }
        t = interleaved(cases, repeats=args.repeats)
        ips = 4 * args.steps
        cells = [
            f"{ratio(t['fp32'], t[v]):.2f}x (wall {ratio(t['fp32'], t[v], 'wall'):.2f}x)"
            for v in ("bf16", "cl", "bf16+cl")
        ]
        print(
            f"| {arch} | {ips / t['fp32'].median_cpu:.2f} | {ips / t['fp32'].median_wall:.2f} | "
            + " | ".join(cells)
            + " |",
            flush=True,
        )
    print(f"# {load_note()} (end)")


if __name__ == "__main__":
    main()
