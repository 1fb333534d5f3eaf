"""Training one fold model with the paper's recipe (Methods, Table 3).

Adam (lr 1e-3, beta1 = the paper's momentum 0.9), ReduceLROnPlateau on the selection loss,
BCEWithLogits (summed over the heads of a deep-supervised model), batch 4, a fixed number of epochs,
and the best epoch chosen on a held-out selection set. Seeded and deterministic on CPU: the same
job with the same thread count gives identical weights (docs/execution.md, "Determinism").

The optimiser and the learning-rate scheduler are settings (``optimizer``, ``scheduler``: the other
entries of Table 3's grid), built by ``make_optimizer`` and ``make_scheduler``; the defaults are the
paper's optimum above.
"""

from __future__ import annotations

import copy
import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from bench.config import OPTIMIZER_CHOICES, SCHEDULER_CHOICES, TrainConfig
from bench.errors import InvalidInput
from bench.run.devices import precision_for


class NonFiniteLoss(RuntimeError):
    """Training produced a NaN or infinite loss; the job is recorded as failed."""


@dataclass
class FitResult:
    model: nn.Module
    best_epoch: int
    best_loss: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def job_seed(*parts: object) -> int:
    """A process-independent seed from the job's identity (never ``hash()``, which is salted)."""
    return zlib.crc32("/".join(map(str, parts)).encode())


def seed_everything(seed: int, threads: int, compiled: bool = False) -> None:
    """Seed torch and numpy; fix torch's (and OpenCV's) thread count, which changes the bits; turn on
    torch's deterministic algorithms (warn-only)."""
    import cv2

    cv2.setNumThreads(threads)
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    torch.set_num_threads(threads)
    deterministic(compiled)


def deterministic(compiled: bool = False) -> None:
    """Deterministic algorithms on, warn-only. ``torch.use_deterministic_algorithms`` sets one flag of
    torch's C core (what eager kernels read) and the same flag in the compiler's configuration, which
    imports ``torch._inductor`` and ``torch._dynamo`` (1-2 s per worker process). Without ``compiled``
    only the core flag is set: the same guarantee for eager execution (identical weights,
    tests/test_precision.py) without the import. A compiled model (``compile: true``) gets both."""
    if compiled or not hasattr(torch._C, "_set_deterministic_algorithms"):
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch._C._set_deterministic_algorithms(True, warn_only=True)


#: Training precisions: the parameter and input dtype. ``fp64`` is for the drift check: with 53-bit
#: mantissas the last-bit differences between CPU kernels stay far below what flips a pixel.
PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "fp64": torch.float64}


def train_dtype(precision: str) -> torch.dtype:
    """The dtype of ``precision`` (``fp32`` or ``fp64``); a clear error for anything else."""
    if precision not in PRECISIONS:
        raise InvalidInput(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return PRECISIONS[precision]


#: What ``fit`` and ``mean_loss`` read batches from: a tensor, or a view whose ``[index]`` / ``[slice]``
#: returns a tensor of those rows and that has ``len`` (``bench.run.execute.Rows``).
Batches = Tensor | Any


def outputs(logits: Tensor | list[Tensor]) -> list[Tensor]:
    return list(logits) if isinstance(logits, (list, tuple)) else [logits]


def batch_loss(model: nn.Module, x: Tensor, y: Tensor, criterion: nn.Module) -> Tensor:
    """BCEWithLogits; a deep-supervised model's heads each get one loss, summed (UNet++ Keras)."""
    return sum(criterion(o, y) for o in outputs(model(x)))


@torch.no_grad()
def mean_loss(
    model: nn.Module,
    x: Batches,
    y: Batches,
    batch_size: int,
    criterion: nn.Module,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> float:
    """Mean ``criterion`` over ``(x, y)``, one batch at a time (each moved to ``device`` / ``dtype``)."""
    model.eval()
    total = 0.0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size].to(device, dtype), y[i : i + batch_size].to(device, dtype)
        total += float(criterion(model(xb), yb)) * len(xb)
    return total / max(1, len(x))


def compiled(model: nn.Module, on: bool) -> nn.Module:
    """``torch.compile(model)`` when ``on`` (the ``compile`` setting: 1.1-1.2x per step after tens of
    seconds of compilation per architecture and process, so for long jobs), else ``model`` itself."""
    if not on:
        return model
    deterministic(compiled=True)  # the compiler's own deterministic flag, before it compiles anything
    return torch.compile(model)


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The ``cfg.optimizer`` over ``params`` at ``cfg.lr``; ``cfg.beta1`` is its momentum (Table 3): Adam's
    beta1 (betas = (beta1, 0.999)), SGD's heavy-ball momentum, RMSprop's momentum (alpha 0.99, torch's default)."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999))
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.beta1)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.beta1)
    raise InvalidInput(f"setting optimizer={cfg.optimizer!r}: must be one of {', '.join(OPTIMIZER_CHOICES)}")


#: Schedulers stepped after every batch (the others step once per epoch).
PER_BATCH = ("cyclic",)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, batches_per_epoch: int) -> Any:
    """The ``cfg.scheduler`` of ``opt`` (None for ``none``). Per epoch: ``plateau`` (ReduceLROnPlateau on the
    selection loss, ``plateau_factor``, ``plateau_patience``), ``step`` (x ``lr_gamma`` every ``step_size``
    epochs), ``multistep`` (x ``lr_gamma`` after 50% and 75% of ``epochs``), ``cosine`` (cosine annealing from
    ``lr`` to 0 over ``epochs``). Per batch: ``cyclic`` (triangular between ``lr * lr_gamma`` and ``lr``, a
    half cycle of ``step_size`` epochs of ``batches_per_epoch`` batches; momentum is not cycled)."""
    lr_sched = torch.optim.lr_scheduler
    if cfg.scheduler == "plateau":
        return lr_sched.ReduceLROnPlateau(opt, factor=cfg.plateau_factor, patience=cfg.plateau_patience)
    if cfg.scheduler == "step":
        return lr_sched.StepLR(opt, step_size=cfg.step_size, gamma=cfg.lr_gamma)
    if cfg.scheduler == "multistep":
        milestones = sorted({max(1, round(cfg.epochs * f)) for f in (0.5, 0.75)})
        return lr_sched.MultiStepLR(opt, milestones=milestones, gamma=cfg.lr_gamma)
    if cfg.scheduler == "cosine":
        return lr_sched.CosineAnnealingLR(opt, T_max=cfg.epochs)
    if cfg.scheduler == "cyclic":
        return lr_sched.CyclicLR(
            opt,
            base_lr=cfg.lr * cfg.lr_gamma,
            max_lr=cfg.lr,
            step_size_up=cfg.step_size * max(1, batches_per_epoch),
            cycle_momentum=False,
        )
    if cfg.scheduler == "none":
        return None
    raise InvalidInput(f"setting scheduler={cfg.scheduler!r}: must be one of {', '.join(SCHEDULER_CHOICES)}")


def step_epoch(sched: Any, scheduler: str, select_loss: float) -> None:
    """The end-of-epoch step of a per-epoch scheduler (``plateau`` reads the selection loss)."""
    if sched is None or scheduler in PER_BATCH:
        return
    if scheduler == "plateau":
        sched.step(select_loss)
    else:
        sched.step()


def fit(
    model: nn.Module,
    cfg: TrainConfig,
    train: tuple[Batches, Batches],
    select: tuple[Batches, Batches],
    *,
    seed: int,
    augment: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None = None,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``train`` = (images N x C x S x S float, masks N x 1 x S x S float) and keep
    the weights of the epoch with the lowest BCE on ``select``. Both are tensors or anything indexed
    like them that returns tensors (``bench.run.execute.Rows``: batches gathered from the cache on demand). ``augment(x, y)`` transforms a training
    batch (never the selection set)."""

    device = torch.device(cfg.device)
    dtype = train_dtype(cfg.precision)
    prec = precision_for(cfg.device, cfg.amp, cfg.channels_last)  # CPU default: fp32, contiguous (unchanged)
    model.to(device=device, dtype=dtype, memory_format=prec.memory_format())
    net = compiled(model, cfg.compile)  # shares the parameters: the state dicts below are ``model``'s
    scaler = torch.amp.GradScaler(device.type) if prec.scaler else None
    criterion = nn.BCEWithLogitsLoss()
    opt = make_optimizer(model.parameters(), cfg)
    sched = make_scheduler(opt, cfg, math.ceil(len(train[0]) / cfg.batch_size))
    gen = torch.Generator().manual_seed(seed)
    best = FitResult(copy.deepcopy(model.state_dict()), -1, math.inf)
    history, start = [], time.perf_counter()
    for epoch in range(cfg.epochs):
        net.train()
        order = torch.randperm(len(train[0]), generator=gen)
        losses = []
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x, y = train[0][idx], train[1][idx]
            if augment is not None:
                x, y = augment(x, y)  # seeded once per job (albumentations' own RNG)
            if device.type == "cuda":  # page-locked host memory: the copy to the GPU need not block
                x, y = x.pin_memory(), y.pin_memory()
            x = x.to(device=device, dtype=dtype, memory_format=prec.memory_format(), non_blocking=True)
            y = y.to(device=device, dtype=dtype, non_blocking=True)
            with prec.autocast(cfg.device):
                loss = batch_loss(net, x, y, criterion)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLoss(
                    f"non-finite training loss {loss.detach().item()} at epoch {epoch}, batch {i // cfg.batch_size}"
                )
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:  # fp16: scale the loss against underflow; steps with inf/NaN gradients are skipped
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            if cfg.scheduler in PER_BATCH:
                sched.step()
            losses.append(loss.detach().item())
        with prec.autocast(cfg.device):  # the selection pass runs with training's autocast (and is recorded so)
            sel = mean_loss(net, select[0], select[1], cfg.batch_size, criterion, device, dtype)
        if not math.isfinite(sel):
            raise NonFiniteLoss(f"non-finite selection loss at epoch {epoch}")
        step_epoch(sched, cfg.scheduler, sel)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "select_loss": sel,
            "lr": opt.param_groups[0]["lr"],
        }
        history.append(record)
        if sel < best.best_loss:
            best = FitResult(copy.deepcopy(model.state_dict()), epoch, sel)
        if on_epoch is not None:
            on_epoch(epoch, record)
    model.load_state_dict(best.model)
    return FitResult(model, best.best_epoch, best.best_loss, history, time.perf_counter() - start)
