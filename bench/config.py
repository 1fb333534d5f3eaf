"""Frozen configuration objects: the training recipe, profiles and jobs. Dicts only at the edges.

A *profile* is a small YAML file in ``bench/profiles/`` (``quick``, ``paper``) or any YAML path;
every value can be overridden from the command line (``--set epochs=3``), for every dataset or for one
(``--set lgg_mri.n_folds=2``: ``Profile.for_dataset``). A *job* is one
(dataset, source, arch, protocol, fold, seed, profile) cell of the benchmark.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import yaml

from bench import __version__
from bench.errors import InvalidInput, MissingInput, UnknownName, UserError

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
    """The training recipe (paper Table 3 and Methods). Everything here changes the numbers.

    ``beta1`` is Table 3's *momentum*, whatever the ``optimizer``: Adam's first-moment decay (betas =
    (beta1, 0.999)), SGD's heavy-ball momentum, RMSprop's momentum (smoothing constant alpha 0.99).
    """

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
    precision: str = "fp32"
    amp: str = "auto"  # mixed precision: auto (bf16/fp16 on GPU, fp32 on CPU) | off | bf16 | fp16
    channels_last: str = "auto"  # auto (on GPU only) | on | off
    compile: bool = False  # torch.compile the network for training (long jobs: compiling takes tens of seconds)
    optimizer: str = "adam"  # adam | sgd | rmsprop (Table 3); beta1 is its momentum (bench/run/train.py make_optimizer)
    scheduler: str = "plateau"  # plateau | step | multistep | cosine | cyclic | none (Table 3; make_scheduler)
    lr_gamma: float = 0.1  # step/multistep: lr multiplier at each decay; cyclic: lowest lr as a fraction of lr
    step_size: int = 30  # step: epochs between decays; cyclic: epochs of a half cycle (lowest to highest lr)

    def __post_init__(self) -> None:
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    description: str
    train: TrainConfig
    folds: tuple[int, ...]
    seeds: tuple[int, ...]
    slurm: tuple[tuple[str, Any], ...] = ()  # the profile's `slurm:` section (bench.run.slurm.SLURM_KEYS)
    #: ``(("lgg_mri.subset", "tumour"), ...)``: checked dataset options (bench.datasets.options), real data only.
    dataset_options: tuple[tuple[str, Any], ...] = ()
    #: Settings scoped to one dataset (``--set lgg_mri.n_folds=2``): ``(("lgg_mri", (("n_folds", 2),)), ...)``,
    #: canonical dataset names, typed values; applied over ``train`` for that dataset only (``for_dataset``).
    scoped: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    #: The profile's ``tracking:`` section (``to: mlflow``, ``uri``, ``experiment``; ``TRACKING_KEYS``): ``bench run``
    #: logs each job there as with ``--track`` (docs/tracking.md); the command line's options win.
    tracking: tuple[tuple[str, str], ...] = ()

    def for_dataset(self, dataset: str) -> Profile:
        """This profile as the jobs of ``dataset`` see it: its scoped settings applied over ``train``."""
        values = dict(self.scoped).get(dataset)
        return self if not values else dataclasses.replace(self, train=dataclasses.replace(self.train, **dict(values)))

    def scoped_settings(self) -> dict[str, Any]:
        """``{"lgg_mri.n_folds": 2, ...}``: the scoped settings as ``--set`` keys."""
        return {f"{ds}.{k}": v for ds, values in self.scoped for k, v in values}


_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


#: Weight initialisations the project's networks accept (architectures/_blocks.py ``InitMode``).
INIT_CHOICES = ("xavier_uniform", "xavier_normal")
_DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")
_INT_FIELDS = (
    "image_size",
    "width",
    "depth",
    "batch_size",
    "epochs",
    "plateau_patience",
    "n_folds",
    "split_seed",
    "threads",
    "patch_padding",
    "step_size",
)
_FLOAT_FIELDS = ("lr", "beta1", "plateau_factor", "test_fraction", "inner_fraction", "lr_gamma")
#: Choices of the precision settings (bench/run/train.py ``PRECISIONS``, bench/run/devices.py).
PRECISION_CHOICES = ("fp32", "fp64")
AMP_CHOICES = ("auto", "off", "bf16", "fp16")
CHANNELS_LAST_CHOICES = ("auto", "on", "off")
#: Optimisers and learning-rate schedulers of Table 3's grid (bench/run/train.py ``make_optimizer``, ``make_scheduler``).
OPTIMIZER_CHOICES = ("adam", "sgd", "rmsprop")
SCHEDULER_CHOICES = ("plateau", "step", "multistep", "cosine", "cyclic", "none")
#: field -> (rule, description) for values of the right type.
_RULES: dict[str, tuple[Any, str]] = {
    "image_size": (lambda v: v >= 8, ">= 8"),
    "width": (lambda v: v >= 1, ">= 1"),
    "depth": (lambda v: v >= 2, ">= 2"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "epochs": (lambda v: v >= 1, ">= 1"),
    "lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "plateau_factor": (lambda v: 0 < v < 1, "in (0, 1)"),
    "plateau_patience": (lambda v: v >= 0, ">= 0"),
    "n_folds": (lambda v: v >= 2, ">= 2"),
    "test_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "split_seed": (lambda v: v >= 0, ">= 0"),
    "threads": (lambda v: v >= 1, ">= 1"),
    "patch_padding": (lambda v: v >= 0, ">= 0"),
    "init": (lambda v: v in INIT_CHOICES, f"one of {', '.join(INIT_CHOICES)}"),
    "device": (lambda v: bool(_DEVICE.match(v)), "auto, cpu, cuda or cuda:N"),
    "synthetic_n": (lambda v: v is None or v >= 1, "none or >= 1"),
    "inner_fraction": (lambda v: 0 < v < 1, "in (0, 1)"),
    "precision": (lambda v: v in PRECISION_CHOICES, f"one of {', '.join(PRECISION_CHOICES)}"),
    "amp": (lambda v: v in AMP_CHOICES, f"one of {', '.join(AMP_CHOICES)}"),
    "channels_last": (lambda v: v in CHANNELS_LAST_CHOICES, f"one of {', '.join(CHANNELS_LAST_CHOICES)}"),
    "optimizer": (lambda v: v in OPTIMIZER_CHOICES, f"one of {', '.join(OPTIMIZER_CHOICES)}"),
    "scheduler": (lambda v: v in SCHEDULER_CHOICES, f"one of {', '.join(SCHEDULER_CHOICES)}"),
    "lr_gamma": (lambda v: 0 < v < 1, "in (0, 1)"),
    "step_size": (lambda v: v >= 1, ">= 1"),
}


def _type_problem(name: str, value: Any) -> str | None:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if name in _INT_FIELDS and not is_int:
        return "an integer"
    if name == "synthetic_n" and not (value is None or is_int):
        return "an integer or none"
    if name in _FLOAT_FIELDS and not (is_int or isinstance(value, float)):
        return "a number"
    if name == "augment" and not isinstance(value, bool):
        return "true or false"
    if name in ("init", "device", "precision", "amp", "channels_last") and not isinstance(value, str):
        return "a string"
    if name in ("optimizer", "scheduler") and not isinstance(value, str):
        return "a string"
    return None


def validate(cfg: TrainConfig) -> None:
    """Check every setting's type and range; ValueError naming the key, the value and what is expected."""
    for name in _TRAIN_FIELDS_ORDER:
        value = getattr(cfg, name)
        expected = _type_problem(name, value)
        if expected is not None:
            raise InvalidInput(f"setting {name}={value!r}: expected {expected}")
        rule = _RULES.get(name)
        if rule is not None and not rule[0](value):
            raise InvalidInput(f"setting {name}={value!r}: must be {rule[1]}")
    factor = 2 ** (cfg.depth - 1)
    if cfg.image_size % factor:
        raise InvalidInput(
            f"setting image_size={cfg.image_size}: must be a multiple of {factor} (2**(depth-1) for "
            f"depth={cfg.depth}), e.g. {max(factor, cfg.image_size // factor * factor)}"
        )


_TRAIN_FIELDS_ORDER = tuple(f.name for f in dataclasses.fields(TrainConfig))


def coerce(name: str, value: Any) -> Any:
    """Convert a command-line string to the type of TrainConfig field ``name``."""
    if name not in _TRAIN_FIELDS:
        raise UnknownName(f"unknown setting {name!r}; known: {', '.join(sorted(_TRAIN_FIELDS))}")
    default = TrainConfig.__dataclass_fields__[name].default
    if isinstance(default, str) and isinstance(value, bool):  # YAML reads on/off/yes/no as booleans
        return "on" if value else "off"
    if not isinstance(value, str):
        return value
    if value.lower() in ("none", "null"):
        return None
    if isinstance(default, bool):
        if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
            raise InvalidInput(f"setting {name} expects true/false, got {value!r}")
        return value.lower() in ("1", "true", "yes")
    try:
        if isinstance(default, int) or name == "synthetic_n":
            return int(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        kind = "a number" if isinstance(default, float) else "an integer"
        raise InvalidInput(f"setting {name} expects {kind}, got {value!r}") from None
    return value


def _read_yaml(path: Path) -> dict[str, Any]:
    """The mapping in profile ``path``; a syntax error names the file, line and column."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(f"profile {path}{where}: not valid YAML ({problem})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise InvalidInput(f"profile {path}: expected a mapping of settings (key: value), got {kind}")
    return raw


def _index_list(raw: dict[str, Any], key: str, default: tuple[int, ...], path: Path) -> tuple[int, ...]:
    values = raw.pop(key, default)
    if not isinstance(values, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values
    ):
        raise InvalidInput(f"profile {path}: {key} must be a list of integers >= 0, got {values!r}")
    return tuple(values)


def load_profile(
    name_or_path: str, overrides: dict[str, Any] | None = None, dataset_options: dict[str, Any] | None = None
) -> Profile:
    """Load ``quick``/``paper`` (or a YAML file) and apply ``overrides`` (field -> value or string) and
    ``dataset_options`` (``"lgg_mri.subset" -> "tumour"``, over the profile's ``dataset_options:``).

    Every setting is checked (``validate``) before anything runs: a wrong type, a value out of range
    or an unknown key raises naming the key (and the file, for values from the profile).
    """
    path = Path(name_or_path)
    if not path.suffix:
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
            raise UnknownName(
                f"unknown profile {name_or_path!r}; known: {', '.join(known)} (or a path to a .yaml file)"
            )
    elif not path.is_file():
        raise MissingInput(f"profile file {path} does not exist (give quick, paper, check or a path to a .yaml file)")
    raw = _read_yaml(path)
    folds = _index_list(raw, "folds", (0, 1, 2, 3, 4), path)
    seeds = _index_list(raw, "seeds", (0,), path)
    description = raw.pop("description", "")
    slurm = raw.pop("slurm", None) or {}
    raw_options = raw.pop("dataset_options", None) or {}
    tracking = _tracking_section(raw.pop("tracking", None), path)
    if not isinstance(slurm, dict):
        raise InvalidInput(f"profile {path}: slurm must be a mapping of SLURM settings, got {slurm!r}")
    try:
        values = {k: coerce(k, v) for k, v in raw.items()}
    except (KeyError, ValueError) as exc:
        raise type(exc)(f"profile {path}: {exc.args[0]}") from None
    plain, scoped = split_scoped(overrides or {})
    values.update({k: coerce(k, v) for k, v in plain.items()})
    options = _dataset_options(raw_options, dataset_options or {}, path)
    train = TrainConfig(**values)
    return Profile(
        path.stem,
        description,
        train,
        folds,
        seeds,
        tuple(sorted(slurm.items())),
        options,
        _scoped(train, scoped),
        tracking=tracking,
    )


#: The keys of a profile's ``tracking:`` section: where ``bench run`` logs each job (``to``: only ``mlflow``).
TRACKING_KEYS = ("to", "uri", "experiment")


def _tracking_section(section: Any, path: Path) -> tuple[tuple[str, str], ...]:
    """A profile's ``tracking:`` section, checked: a mapping of ``TRACKING_KEYS`` whose ``to`` is ``mlflow``."""
    if not section:
        return ()
    if not isinstance(section, dict):
        raise InvalidInput(f"profile {path}: tracking must be a mapping (to: mlflow, uri: URI, experiment: NAME)")
    unknown = sorted(set(map(str, section)) - set(TRACKING_KEYS))
    if unknown:
        raise InvalidInput(f"profile {path}: tracking: unknown key(s) {', '.join(unknown)}; known: to, uri, experiment")
    if str(section.get("to", "mlflow")) != "mlflow":
        raise InvalidInput(f"profile {path}: tracking: to must be mlflow, got {section['to']!r}")
    return tuple(sorted((str(k), str(v)) for k, v in {"to": "mlflow", **section}.items()))


#: Settings that cannot be scoped to one dataset: they say where every job runs.
UNSCOPED = ("device",)


def split_scoped(overrides: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """``--set`` values as (plain settings, dataset -> its scoped settings): ``lgg_mri.n_folds=2`` (or an alias,
    ``mri.n_folds=2``) applies to that dataset only. An unknown dataset or setting is an error naming the key."""
    plain: dict[str, Any] = {}
    scoped: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        dataset, sep, name = str(key).partition(".")
        if not sep:
            plain[key] = value
            continue
        from bench.datasets import canonical_name

        try:
            dataset = canonical_name(dataset)
        except KeyError as exc:
            raise UnknownName(f"--set {key}: {exc.args[0]} (DATASET.SETTING scopes a setting to one dataset)") from None
        if name in UNSCOPED:
            raise InvalidInput(f"--set {key}: {name} applies to the whole run; set it without a dataset ({name}=...)")
        try:
            typed = coerce(name, value)
        except UserError as exc:
            raise type(exc)(f"--set {key}: {exc.args[0]}") from None
        scoped.setdefault(dataset, {})[name] = typed
    return plain, scoped


def _scoped(
    train: TrainConfig, scoped: dict[str, dict[str, Any]]
) -> tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]:
    """The scoped settings, each dataset's checked over ``train`` (an error names the dataset)."""
    for dataset, values in scoped.items():
        try:
            dataclasses.replace(train, **values)
        except UserError as exc:
            raise type(exc)(f"--set {dataset}.*: {exc.args[0]}") from None
    return tuple(sorted((ds, tuple(sorted(values.items()))) for ds, values in scoped.items()))


def _dataset_options(from_profile: Any, from_cli: dict[str, Any], path: Path) -> tuple[tuple[str, Any], ...]:
    """The profile's ``dataset_options:`` mapping, then the command line's, each checked against the
    datasets' declarations (an error names the profile file or ``--dataset-option``)."""
    from bench.datasets.options import parse_dataset_options

    if not isinstance(from_profile, dict):
        raise InvalidInput(
            f"profile {path}: dataset_options must be a mapping of DATASET.OPTION: value, got {from_profile!r}"
        )
    merged = dict(parse_dataset_options(from_profile, f"profile {path}: dataset_options"))
    merged.update(parse_dataset_options(from_cli, "--dataset-option"))
    return tuple(sorted(merged.items()))


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
    #: The registry entry's own constructor arguments (JSON), e.g. the reading of the paper an entry builds:
    #: what the name means can change, so it is part of the key whenever the entry has any.
    arch_defaults: str = "{}"
    #: How a ``bench run --tuned NAME`` job got its values (JSON; "{}" otherwise): the tuning's ``name``, ``mode``
    #: (fair, or the paper's way), ``grid``, budget (``folds``, ``epochs``) and the ``chosen`` point
    #: (``bench.models.tune.tuning_record``). Part of the key whenever present.
    tuning: str = "{}"

    @property
    def source(self) -> str:
        return "synthetic" if self.data_root is None else "real"

    @property
    def key(self) -> str:
        """Hash of everything that changes this job's numbers (not paths, not the profile's name)."""

        payload = {
            "dataset": self.dataset,
            "source": self.source,
            "data": self.data_fingerprint,
            "split": self.split_hash,
            "arch": self.arch,
            "arch_kwargs": self.arch_kwargs,
            "protocol": self.protocol,
            "fold": self.fold,
            "seed": self.seed,
            "train": self.train.to_dict(),
            "data_options": self.data_options,
            "version": __version__,
        }
        if self.arch_defaults != "{}":
            payload["arch_defaults"] = self.arch_defaults
        if self.tuning != "{}":
            payload["tuning"] = self.tuning
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
        # Records written before the LGG subset became a dataset option carry `lgg_subset` in `train`; it
        # only ever acted on real LGG data, whose `data_options` record the subset too, so nothing is lost.
        train = {k: v for k, v in values["train"].items() if k != "lgg_subset"}
        values["train"] = TrainConfig(**train)
        return cls(**values)


def replace(obj: Any, **changes: Any) -> Any:
    return dataclasses.replace(obj, **changes)
