"""Frozen configuration objects: the training recipe, profiles and jobs. Dicts only at the edges.

A *profile* is a small YAML file in ``bench/profiles/`` (``quick``, ``paper``) or any YAML path;
every value can be overridden from the command line (``--set epochs=3``). A *job* is one
(dataset, source, arch, protocol, fold, seed, profile) cell of the benchmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

PROFILE_DIR = Path(__file__).parent / "profiles"


class Protocol(str, Enum):
    """``holdout``: 70/30 split, 5 folds of the 70%, fold models scored on the test set (Tables 4-5).
    ``cv``: 5-fold CV over everything, each image scored once out of fold (Fig. 8)."""

    HOLDOUT = "holdout"
    CV = "cv"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """The training recipe (paper Table 3 and Methods). Everything here changes the numbers."""

    image_size: int = 256
    width: int = 32
    depth: int = 5
    batch_size: int = 4
    epochs: int = 100
    lr: float = 1e-3
    beta1: float = 0.9
    plateau_factor: float = 0.1
    plateau_patience: int = 10
    n_folds: int = 5
    test_fraction: float = 0.3
    split_seed: int = 12345
    inner_fraction: float = 0.1  # cv: share of the training folds (whole groups) that chooses the epoch
    init: str = "xavier_uniform"
    augment: bool = False
    threads: int = 1
    device: str = "cpu"
    synthetic_n: int | None = None
    patch_padding: int = 16
    lgg_subset: str = "all"
    precision: str = "fp32"
    amp: str = "auto"  # mixed precision: auto (bf16/fp16 on GPU, fp32 on CPU) | off | bf16 | fp16
    channels_last: str = "auto"  # auto (on GPU only) | on | off
    compile: bool = False  # torch.compile the network for training (long jobs: compiling takes tens of seconds)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    train: TrainConfig
    folds: tuple[int, ...]
    seeds: tuple[int, ...]
    slurm: tuple[tuple[str, Any], ...] = ()  # the profile's `slurm:` section (bench.slurm.SLURM_KEYS)


_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def coerce(name: str, value: Any) -> Any:
    """Convert a command-line string to the type of TrainConfig field ``name``."""
    if name not in _TRAIN_FIELDS:
        raise KeyError(f"unknown setting {name!r}; known: {', '.join(sorted(_TRAIN_FIELDS))}")
    if not isinstance(value, str):
        return value
    default = TrainConfig.__dataclass_fields__[name].default
    if value.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError(f"{name} expects true/false, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    if isinstance(default, int) or name == "synthetic_n":
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def load_profile(name_or_path: str, overrides: dict[str, Any] | None = None) -> Profile:
    """Load ``quick``/``paper`` (or a YAML file) and apply ``overrides`` (field -> value or string)."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
            raise KeyError(f"unknown profile {name_or_path!r}; known: {', '.join(known)} (or a path to a .yaml file)")
    raw = yaml.safe_load(path.read_text()) or {}
    folds = tuple(raw.pop("folds", (0, 1, 2, 3, 4)))
    seeds = tuple(raw.pop("seeds", (0,)))
    description = raw.pop("description", "")
    slurm = tuple(sorted((raw.pop("slurm", None) or {}).items()))
    values = {k: coerce(k, v) for k, v in {**raw, **(overrides or {})}.items()}
    return Profile(path.stem, description, TrainConfig(**values), folds, seeds, slurm)


@dataclass(frozen=True, slots=True)
class Job:
    """One cell of the benchmark. ``data_root`` is the dataset's own folder (None: synthetic)."""

    dataset: str
    arch: str
    protocol: str
    fold: int
    seed: int
    profile: str
    train: TrainConfig
    data_root: str | None = None
    data_fingerprint: str = ""
    split_hash: str = ""
    split_path: str = ""
    data_options: str = "{}"
    arch_kwargs: str = "{}"

    @property
    def source(self) -> str:
        return "synthetic" if self.data_root is None else "real"

    @property
    def key(self) -> str:
        """Hash of everything that changes this job's numbers (not paths, not the profile's name)."""
        from bench import __version__

        payload = {
            "dataset": self.dataset, "source": self.source, "data": self.data_fingerprint, "split": self.split_hash,
            "arch": self.arch, "arch_kwargs": self.arch_kwargs, "protocol": self.protocol, "fold": self.fold,
            "seed": self.seed, "train": self.train.to_dict(), "data_options": self.data_options, "version": __version__,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def stem(self) -> str:
        return f"{self.protocol}_f{self.fold}_s{self.seed}_{self.key[:8]}"

    @property
    def label(self) -> str:
        return f"{self.dataset}/{self.arch}/{self.protocol}/fold{self.fold}/seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["source"], d["key"] = self.source, self.key
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in d.items() if k in fields}
        values["train"] = TrainConfig(**values["train"])
        return cls(**values)


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)



