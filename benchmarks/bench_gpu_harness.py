"""MILDNet on a GPU: training images per second in fp32 and in mixed precision, through the harness
(``bench.run.train.fit``) and through a bare PyTorch loop, plus inference images per second.

    python benchmarks/bench_gpu_harness.py                          # cuda, MILDNet, 256 px, width 32, depth 5
    python benchmarks/bench_gpu_harness.py --out gpu-harness.json   # also keep the numbers
    python benchmarks/bench_gpu_harness.py --device cpu --size 64 --width 8 --images 16   # a dry run on a CPU

Modes: ``fp32`` (amp off, contiguous), ``fp32+cl`` (amp off, channels-last) and ``amp+cl`` (the GPU default:
bf16 autocast where the card computes bf16 natively, else fp16 with a gradient scaler; channels-last).

- **harness**: ``fit`` on ``--images`` random images (batch ``--batch``, the paper's 4), 1 selection batch,
  ``--epochs`` epochs; images/s of the last epoch, timed between the epoch callbacks with the device
  synchronised (the first epoch is the warm-up: cuDNN autotuning, allocator growth). It includes what a job
  pays per step: gathering each batch from host memory, pinning and copying it, the finite-loss check
  (one device sync per step), the per-epoch selection pass and the best-weights copy.
- **bare**: the same model, optimiser (Adam 1e-3), loss and precision in a minimal loop over batches already
  on the device (no copies, no checks, no selection pass): the ceiling of the card for this network.
- **infer**: ``predict_batches`` (the harness's scoring forward) over the images, in each mode's autocast.

Both loops run under a job's global settings (``seed_everything``: torch's deterministic algorithms,
warn-only, and one CPU thread), so the ratio harness/bare is the harness's own overhead at paper scale;
amp/fp32 is what mixed precision buys.
Peak memory is ``torch.cuda.max_memory_allocated`` of each mode's training. Needs CUDA unless ``--device cpu``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from bench.architectures import create_model
from bench.config import TrainConfig, replace
from bench.run.devices import bind_device, precision_for
from bench.run.evaluate import predict_batches
from bench.run.train import batch_loss, fit, seed_everything

MODES = {"fp32": ("off", "off"), "fp32+cl": ("off", "on"), "amp+cl": ("auto", "on")}


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def data(n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=gen), (torch.rand(n, 1, size, size, generator=gen) > 0.5).float()


def fresh_model(args: argparse.Namespace) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(args.arch, in_channels=3, classes=1, width=args.width, depth=args.depth)


def harness(args: argparse.Namespace, amp: str, layout: str) -> float:
    cfg = replace(
        TrainConfig(image_size=args.size, width=args.width, depth=args.depth, batch_size=args.batch),
        epochs=args.epochs,
        device=args.device,
        amp=amp,
        channels_last=layout,
    )
    x, y = data(args.images, args.size)
    marks: list[float] = []

    def on_epoch(epoch: int, record: dict) -> None:
        sync(args.device)
        marks.append(time.perf_counter())

    sync(args.device)
    start = time.perf_counter()
    fit(fresh_model(args), cfg, (x, y), (x[: args.batch], y[: args.batch]), seed=0, on_epoch=on_epoch)
    last = marks[-1] - (marks[-2] if len(marks) > 1 else start)
    return args.images / last


def bare(args: argparse.Namespace, amp: str, layout: str) -> tuple[float, float | None]:
    device = torch.device(args.device)
    prec = precision_for(args.device, amp, layout)
    model = fresh_model(args).to(device=device, memory_format=prec.memory_format())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type) if prec.scaler else None
    crit = torch.nn.BCEWithLogitsLoss()
    x, y = data(args.images, args.size)
    batches = [
        (
            x[i : i + args.batch].to(device, memory_format=prec.memory_format()),
            y[i : i + args.batch].to(device),
        )
        for i in range(0, args.images, args.batch)
    ]

    def epoch() -> None:
        model.train()
        for xb, yb in batches:
            with prec.autocast(args.device):
                loss = batch_loss(model, xb, yb, crit)
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(max(1, args.epochs - 1)):  # warm-up epochs, as the harness's
        epoch()
    sync(args.device)
    start = time.perf_counter()
    epoch()
    sync(args.device)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return args.images / (time.perf_counter() - start), peak


def infer(args: argparse.Namespace, amp: str, layout: str) -> float:
    prec = precision_for(args.device, amp, layout)
    model = fresh_model(args).to(device=args.device, memory_format=prec.memory_format())
    x, _ = data(args.images, args.size)
    for _ in predict_batches(model, x[: args.batch], args.batch, args.device, lambda: prec.autocast(args.device)):
        pass  # warm-up
    sync(args.device)
    start = time.perf_counter()
    for _ in predict_batches(model, x, args.batch, args.device, lambda: prec.autocast(args.device)):
        pass
    sync(args.device)
    return args.images / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--arch", default="mildnet")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--images", type=int, default=200, help="training images per epoch (a multiple of --batch)")
    p.add_argument("--epochs", type=int, default=2, help="the last one is timed")
    p.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = p.parse_args()
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit("bench_gpu_harness: needs a CUDA device (or --device cpu for a dry run)")
        args.device = args.device if ":" in args.device else "cuda:0"
        bind_device(args.device)
    seed_everything(0, threads=1)  # what every job sets first: deterministic algorithms (warn-only), 1 thread
    card = (
        torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else (platform.processor() or "CPU")
    )
    print(f"{args.arch} {args.size} px, width {args.width}, depth {args.depth}, batch {args.batch}, on {card}")
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, {args.images} images per epoch, last of {args.epochs} timed"
    )
    rows = []
    for mode, (amp, layout) in MODES.items():
        used = precision_for(args.device, amp, layout).name
        h = harness(args, amp, layout)
        b, peak = bare(args, amp, layout)
        i = infer(args, amp, layout)
        rows.append(
            {
                "mode": mode,
                "autocast": used,
                "harness_img_s": h,
                "bare_img_s": b,
                "harness_over_bare": h / b,
                "infer_img_s": i,
                "train_peak_mb": peak,
            }
        )
        mem = f"{peak:8.0f} MB" if peak is not None else "       -"
        print(
            f"{mode:8s} ({used:4s})  harness {h:8.1f} img/s  bare {b:8.1f} img/s  ratio {h / b:5.2f}  "
            f"infer {i:8.1f} img/s  peak {mem}",
            flush=True,
        )
    base = rows[0]
    for row in rows[1:]:
        print(
            f"{row['mode']} / fp32: harness {row['harness_img_s'] / base['harness_img_s']:.2f}x, "
            f"bare {row['bare_img_s'] / base['bare_img_s']:.2f}x, infer {row['infer_img_s'] / base['infer_img_s']:.2f}x"
        )
    if args.out:
        meta = {k: getattr(args, k) for k in ("device", "arch", "size", "width", "depth", "batch", "images", "epochs")}
        args.out.write_text(json.dumps({"card": card, "torch": torch.__version__, **meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
