"""How much faster could a quick job's training get? The ceiling of the per-step options, whole ``fit`` calls.

    python benchmarks/bench_fit_ceiling.py [--arch unet,mildnet] [--epochs 5] [--repeats 3]

Training is nearly all of a quick job (``benchmarks/profile_job.py``), so this bounds what any speed-up
of the quick sweep can reach at the quick profile's recipe. It times ``bench.run.train.fit`` itself, the
selection pass and the epoch loop included, at the quick profile's settings (64 px, width 8, depth 5,
batch 4, channels-last; 17 training and 5 selection images, the DSB-2018 stand-in's fold-0 sizes), for:

- ``fp32``: the quick profile as it is (the default);
- ``bf16``: ``--set amp=bf16`` (bf16 autocast in training);
- ``fused``: Adam's fused CPU kernel (``torch.optim.Adam(fused=True)``) in place of the default loop;
- ``all``: bf16, fused Adam and the selection loss computed in one bf16 batch instead of batches of 4.

Every option but ``fp32`` changes the bits of the results. Timing: ``benchmarks/timing.py`` (one
warm-up ``fit`` of one epoch, rotating order, CPU time); speed-ups are medians of per-round ratios
against ``fp32``. One torch thread.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable
from dataclasses import replace

import torch
from timing import cpu_name, interleaved, load_note, ratio

from bench.architectures import create_model
from bench.config import TrainConfig, load_profile
from bench.run import train

ARCHS = ("unet", "residual_unet", "resdunet", "unetpp", "multiresunet", "mildnet", "unet_mlr", "mildnet_no_mlr")
N_TRAIN, N_SELECT = 17, 5


def _fused_adam(params: object, cfg: TrainConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999), fused=True)


def _one_bf16_batch(mean_loss: Callable) -> Callable:
    def select_loss(model, x, y, batch_size, criterion, device="cpu", dtype=torch.float32):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return mean_loss(model, x, y, len(x), criterion, device, dtype)

    return select_loss


VARIANTS = {
    "fp32": ("off", False, False),
    "bf16": ("bf16", False, False),
    "fused": ("off", True, False),
    "all": ("bf16", True, True),
}


def fitter(base: torch.nn.Module, cfg: TrainConfig, variant: str, epochs: int) -> Callable[[], object]:
    amp, fused, one_batch = VARIANTS[variant]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(N_TRAIN + N_SELECT, 3, 64, 64, generator=g)
    y = (torch.rand(N_TRAIN + N_SELECT, 1, 64, 64, generator=g) > 0.5).float()
    plain_optimizer, plain_select = train.make_optimizer, train.mean_loss

    def run() -> object:
        train.make_optimizer = _fused_adam if fused else plain_optimizer
        train.mean_loss = _one_bf16_batch(plain_select) if one_batch else plain_select
        try:
            model = copy.deepcopy(base)
            sel, tr = (x[:N_SELECT], y[:N_SELECT]), (x[N_SELECT:], y[N_SELECT:])
            return train.fit(model, replace(cfg, amp=amp, epochs=epochs), tr, sel, seed=0)
        finally:
            train.make_optimizer, train.mean_loss = plain_optimizer, plain_select

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", default=",".join(ARCHS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    train.deterministic()
    cfg = load_profile("quick", {}).train
    print(f"# {cpu_name()}; torch {torch.__version__}; {args.epochs} epochs per call, {args.repeats} rounds")
    print(f"# start: {load_note()}")
    print("| network | fp32 s per call (CPU) | bf16 | fused Adam | all three |")
    print("|---|---:|---:|---:|---:|")
    for arch in args.arch.split(","):
        torch.manual_seed(0)
        base = create_model(arch, in_channels=3, classes=1, width=cfg.width, depth=cfg.depth)
        for variant in VARIANTS:  # warm-up: one epoch each (kernels, allocator)
            fitter(base, cfg, variant, 1)()
        cases = {v: fitter(base, cfg, v, args.epochs) for v in VARIANTS}
        t = interleaved(cases, repeats=args.repeats, warmup=0)
        ups = [f"{ratio(t['fp32'], t[v]):.2f}x" for v in ("bf16", "fused", "all")]
        print(f"| {arch} | {t['fp32'].median_cpu:.2f} | " + " | ".join(ups) + " |", flush=True)
    print(f"# end: {load_note()}")


if __name__ == "__main__":
    main()
