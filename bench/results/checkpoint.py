"""The checkpoint format: fold-model weights plus everything needed to rebuild the model and its
preprocessing, so ``bench predict`` and ``bench evaluate`` need no other input.

A checkpoint is a plain dict readable with ``torch.load(path, weights_only=True)`` (no pickled
classes): ``state_dict`` (name -> CPU tensor) and ``meta``, a dict of str/int/float/bool/None/lists:

- ``format`` (``"bench-checkpoint"``), ``format_version`` and ``bench_version``;
- ``arch`` and ``model_kwargs`` (the exact constructor arguments: in_channels, classes, width, ...);
- ``preprocessing``: ``image_size`` (the square input side S), ``channels``, ``normalization``
  (``minmax_per_source``: ``(x - min) / (max - min)`` over the resized source image, jointly over
  channels), ``patch_size`` / ``patch_padding`` (native pixels; None for whole-image datasets) and
  ``native_scale`` (source pixels per native pixel; 1 for real data);
- ``threshold`` (foreground = sigmoid(logits) > threshold);
- provenance: ``dataset``, ``source``, ``data_options``, ``data_fingerprint``, ``job_key``, ``protocol``,
  ``fold``, ``seed``, ``profile``.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench import __version__
from bench.architectures import create_model
from bench.errors import MissingInput, UserError, environment_error
from bench.metrics import THRESHOLD

if TYPE_CHECKING:
    from bench.config import Job
    from bench.datasets.prepare import PreparedData

FORMAT = "bench-checkpoint"
#: Bump when the layout of ``meta`` or the meaning of a field changes.
FORMAT_VERSION = 1


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot be used as asked: old format, other version, other architecture."""


@dataclass(frozen=True, slots=True)
class Preprocessing:
    """How an image becomes network input (see ``bench.datasets.prepare``)."""

    image_size: int
    channels: int
    normalization: str = "minmax_per_source"
    patch_size: int | None = None
    patch_padding: int | None = None
    native_scale: float = 1.0

    @property
    def patched(self) -> bool:
        return bool(self.patch_size)


@dataclass(frozen=True, slots=True)
class CheckpointMeta:
    arch: str
    model_kwargs: dict[str, Any]
    preprocessing: Preprocessing
    dataset: str
    source: str
    data_options: str
    data_fingerprint: str
    job_key: str
    protocol: str
    fold: int
    seed: int
    profile: str
    threshold: float = THRESHOLD  # the one threshold scoring uses (bench.metrics)
    bench_version: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckpointMeta:
        values = dict(d)
        values["preprocessing"] = Preprocessing(**values["preprocessing"])
        return cls(**values)


def checkpoint_meta(job: Job, data: PreparedData, model_kwargs: dict[str, Any]) -> CheckpointMeta:
    """The metadata of ``job``'s fold model trained on ``data`` (its preprocessing options)."""
    from bench.datasets import open_dataset

    root = None if job.data_root is None else Path(job.data_root)
    ds = open_dataset(job.dataset, root, **json.loads(job.data_options))
    opts = data.options
    prep = Preprocessing(
        image_size=int(opts["size"]),
        channels=int(data.images.shape[1]),
        normalization=str(opts.get("normalization", "minmax_per_source")),
        patch_size=opts.get("patch_size"),
        patch_padding=opts.get("patch_padding"),
        native_scale=float(getattr(ds, "native_scale", 1.0)),
    )
    return CheckpointMeta(
        arch=job.arch,
        model_kwargs=dict(model_kwargs),
        preprocessing=prep,
        dataset=job.dataset,
        source=job.source,
        data_options=job.data_options,
        data_fingerprint=job.data_fingerprint,
        job_key=job.key,
        protocol=job.protocol,
        fold=job.fold,
        seed=job.seed,
        profile=job.profile,
    )


def save_checkpoint(path: Path, model: torch.nn.Module, meta: CheckpointMeta) -> None:
    """Write ``{"meta": ..., "state_dict": ...}`` atomically (temporary file, then rename)."""

    meta_dict = {**meta.to_dict(), "bench_version": __version__}
    payload = {"meta": meta_dict, "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}}
    import io

    from bench.results.store import atomic_write_bytes

    # serialised in memory first: torch's writer reports a failed write (a full disk) as an opaque
    # "enforce fail ... unexpected pos"; a plain file write says "no space left on device" and the path
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(Path(path), buffer.getbuffer())  # a unique temporary name, then rename


def read_checkpoint(path: Path) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """(meta, state_dict) of a checkpoint written by ``save_checkpoint``, loaded safely (weights_only).

    Raises ``CheckpointError`` naming the file for a plain state dict (written before metadata was
    recorded), another format version or another bench version.
    """

    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # weights_only refuses any pickled object other than tensors
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a pickled {found.group(1)} object" if found else "pickled objects"
        raise CheckpointError(
            f"{path}: refused, not a bench checkpoint: it holds {what}, which loading would run"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        if isinstance(exc, OSError) and environment_error(exc):  # unreadable for the machine's reasons
            raise
        raise CheckpointError(f"{path}: damaged or not a checkpoint, cannot be read ({one_line(exc)})") from None
    meta = payload.get("meta") if isinstance(payload, dict) else None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a {FORMAT} file (a plain state dict from an older bench has no record "
            "of its architecture or preprocessing); re-run its job with `bench run --force`"
        )
    if meta.get("format_version") != FORMAT_VERSION or meta.get("bench_version") != __version__:
        raise CheckpointError(
            f"{path}: written by bench {meta.get('bench_version')} (checkpoint format "
            f"{meta.get('format_version')}); this is bench {__version__} (format {FORMAT_VERSION}). "
            "Use that version, or re-run the job with this one"
        )
    return CheckpointMeta.from_dict(meta), payload["state_dict"]


def one_line(exc: BaseException, width: int = 120) -> str:
    """``Type: first line of the message``, cut to ``width`` characters."""
    text = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= width else line[: width - 1] + "…"


def load_model(path: Path, arch: str | None = None) -> tuple[torch.nn.Module, CheckpointMeta]:
    """The fold model of checkpoint ``path`` in eval mode, on CPU, and its metadata.

    ``arch``: the architecture the caller expects; a checkpoint of another one raises ``CheckpointError``,
    and so does a state dict whose tensors do not fit the rebuilt model.
    """

    meta, state = read_checkpoint(path)
    if arch is not None and meta.arch != arch:
        raise CheckpointError(f"{path}: holds architecture {meta.arch!r}, not the requested {arch!r}")
    model = create_model(meta.arch, **meta.model_kwargs)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: the weights do not fit {meta.arch} built with {meta.model_kwargs}: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}, wrong shape {wrong[:5]}"
        )
    model.load_state_dict(state)
    return model.eval(), meta
