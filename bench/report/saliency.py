"""Gradient saliency maps per decoder stage (the paper's Fig. 7), from stored fold models.

Following the paper's Methods ("derivative of the model output with respect to the input features",
per decoder layer, averaged, up-sampled to the input size): for one image, the model's output score
``S`` is the sum of its foreground logits over all pixels. At each decoder stage the features that
enter the stage (``h`` at the stage's resolution, captured by a forward hook) get the gradient
``dS/dh``; the stage's map is ``mean over channels of |dS/dh|``, scaled to [0, 1] by its maximum (so
every stage weighs the same), and bilinearly up-sampled to the input size. The saliency map is the
mean of the stage maps: H x W, in [0, 1].

Decoder stages: ``model.decoder`` (a ModuleList: U-Net, ResidualU-Net, ResDUNet, MultiResUNet,
MILDNet and the ablations), every nested node's convolution unit for UNet++ (``model.nodes``), and
``model.decoder.blocks`` for segmentation-models-pytorch models that have it (Unet, UnetPlusPlus,
MAnet, Linknet); other models are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from bench.analysis.names import arch_label, dataset_label
from bench.errors import InvalidInput, NoResults


def decoder_stages(model: nn.Module) -> list[nn.Module]:
    """The decoder stages of ``model`` whose inputs the saliency is taken with respect to (module docstring)."""
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, nn.ModuleList) and len(decoder):
        return list(decoder)
    nodes = getattr(model, "nodes", None)
    if isinstance(nodes, nn.ModuleList):  # UNet++: X(i, j >= 1), each a concat followed by its unit
        return [node.unit for row in nodes for node in row]
    blocks = getattr(decoder, "blocks", None)
    if isinstance(blocks, (nn.ModuleList, nn.ModuleDict)) and len(blocks):
        return list(blocks.values()) if isinstance(blocks, nn.ModuleDict) else list(blocks)
    raise InvalidInput(
        f"{type(model).__name__}: no decoder stages found (expected model.decoder as a ModuleList, "
        "UNet++ nodes, or an smp decoder with .blocks); saliency is not defined for it here"
    )


def _tensors(obj: object) -> list[Tensor]:
    if isinstance(obj, Tensor):
        return [obj] if obj.ndim == 4 else []
    if isinstance(obj, (list, tuple)):
        return [t for item in obj for t in _tensors(item)]
    return []


def saliency_maps(model: nn.Module, images: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(maps N x H x W, stage maps N x n_stages x H x W), float32 in [0, 1], for ``images`` N x C x H x W.

    Each image is its own backward pass (its score does not mix with the others'). The model runs in
    eval mode; its parameters get no gradient."""
    stages = decoder_stages(model)
    model.eval()
    dtype = next(model.parameters()).dtype
    captured: list[list[Tensor]] = [[] for _ in stages]

    def hook(i: int):
        def capture(_module: nn.Module, inputs: tuple) -> None:
            captured[i].extend(_tensors(inputs))

        return capture

    handles = [stage.register_forward_pre_hook(hook(i)) for i, stage in enumerate(stages)]
    maps, stage_maps = [], []
    try:
        for image in images:
            for c in captured:
                c.clear()
            x = image[None].to(dtype)
            with torch.enable_grad():
                score = model(x)[:, 0].sum()
                inputs = [t for c in captured for t in c]
                grads = torch.autograd.grad(score, inputs, allow_unused=True)
            per_stage, k = [], 0
            zero = torch.zeros(x.shape[-2:], dtype=torch.float64, device=x.device)  # a stage the output ignores
            for c in captured:
                up = [_stage_map(g, x.shape[-2:]) for g in grads[k : k + len(c)] if g is not None]
                k += len(c)
                per_stage.append(torch.stack(up).mean(0) if up else zero)
            stacked = torch.stack(per_stage)
            stage_maps.append(stacked.float().cpu().numpy())
            maps.append(stacked.mean(0).float().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
    return np.stack(maps), np.stack(stage_maps)


def _stage_map(grad: Tensor, size: torch.Size) -> Tensor:
    """mean_c |grad| at the stage's resolution, scaled to [0, 1], up-sampled (bilinear) to ``size``."""
    m = grad.detach().abs().mean(dim=1, keepdim=True).double()
    top = m.max()
    m = m / top if top > 0 else m
    return F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)


def saliency_figure(images: np.ndarray, maps: dict[str, np.ndarray], cases: Sequence[str], title: str) -> Figure:
    """One row per case: the image, then each architecture's saliency map drawn over it (``jet``, alpha 0.5).
    ``images``: N x C x H x W in [0, 1]; ``maps``: architecture -> N x H x W."""
    from bench.report.qualitative import _display

    archs = list(maps)
    ncols, nrows = 1 + len(archs), len(cases)
    fig = Figure(figsize=(1.9 * ncols + 0.6, 2.0 * nrows + 0.6), layout="constrained")
    mappable = None
    for r, case in enumerate(cases):
        img, kw = _display(images[r])
        ax = fig.add_subplot(nrows, ncols, r * ncols + 1)
        ax.imshow(img, **kw)
        ax.set_title(f"Image\n{case}", fontsize=7)
        ax.set_axis_off()
        for c, arch in enumerate(archs):
            ax = fig.add_subplot(nrows, ncols, r * ncols + c + 2)
            ax.imshow(img, **kw)
            mappable = ax.imshow(maps[arch][r], cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_title(arch_label(arch), fontsize=7)
            ax.set_gid(f"saliency:{arch}:{case}")
            ax.set_axis_off()
    if mappable is not None:
        fig.colorbar(mappable, ax=fig.get_axes(), shrink=0.6, label="saliency (0-1)")
    fig.suptitle(title, fontsize=9, wrap=True)
    return fig


def saliency(
    results: Path | str,
    dataset: str,
    archs: Sequence[str],
    out_dir: Path | str,
    *,
    cases: Sequence[str] | None = None,
    n: int = 3,
    protocol: str = "holdout",
    fold: int | None = None,
    device: str = "cpu",
    raw: bool = True,
) -> list[Path]:
    """Saliency of each architecture's stored fold model (``fold``: the lowest every architecture has) on
    ``cases`` (default: the first ``n`` images that model scored on the test set, or held out under cv).
    Writes ``saliency_<dataset>.png/.pdf`` and, with ``raw``, ``saliency_<dataset>.npz`` (``case_ids``,
    ``images``, and per architecture ``<arch>`` N x H x W and ``<arch>__stages`` N x n_stages x H x W)
    under ``out_dir``. The report draws the figure only (``raw=False``); ``bench saliency`` keeps the maps."""
    from bench.report.figures import _save
    from bench.results.checkpoint import load_model
    from bench.results.job_data import load_job_data
    from bench.results.stored import stored_models

    results, out_dir = Path(results), Path(out_dir)
    found = {a: stored_models(results, dataset, a, protocol=protocol) for a in archs}
    common = set.intersection(*({m.job.fold for m in ms} for ms in found.values()))
    if fold is None:
        if not common:
            raise NoResults(f"{dataset}: {', '.join(archs)} share no finished fold model; choose one with --fold")
        fold = min(common)
    elif fold not in common:
        raise NoResults(f"{dataset}: fold {fold} is not finished for every architecture (common: {sorted(common)})")
    chosen = {
        a: next(m for m in ms if m.job.fold == fold and m.job.seed == min(x.job.seed for x in ms))
        for a, ms in found.items()
    }
    first = chosen[archs[0]]
    data, split = load_job_data(first.job, results / "cache")
    if not cases:
        ids = split.fold_ids(fold)
        cases = sorted(ids["test"] or ids["val"])[:n]
    idx = data.index(cases)
    images = torch.from_numpy(data.images[idx])
    maps, arrays = {}, {"case_ids": np.array(list(cases)), "images": data.images[idx]}
    for arch, stored in chosen.items():
        model, meta = load_model(stored.checkpoint, arch)
        if meta.data_fingerprint != first.job.data_fingerprint:
            raise NoResults(
                f"{arch}: its model was trained on other data than {archs[0]}'s "
                f"({meta.data_fingerprint[:12]} != {first.job.data_fingerprint[:12]})"
            )
        maps[arch], stages = saliency_maps(model.to(device), images.to(device))
        arrays[arch.replace(":", "_")], arrays[f"{arch.replace(':', '_')}__stages"] = maps[arch], stages
    out_dir.mkdir(parents=True, exist_ok=True)
    npz = [out_dir / f"saliency_{dataset}.npz"] if raw else []
    if raw:
        np.savez_compressed(npz[0], **arrays)
    source = " [SYNTHETIC DATA]" if first.job.data_root is None else ""
    title = (
        f"Saliency, {dataset_label(dataset)}: mean over decoder stages of |d output / d stage input|, "
        f"up-sampled to the input; {protocol} fold model {fold}{source}"
    )
    return _save(saliency_figure(data.images[idx], maps, list(cases), title), out_dir, f"saliency_{dataset}") + npz
