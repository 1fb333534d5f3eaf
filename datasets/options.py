"""Dataset options: settings a dataset declares because they change its data (the LGG ``subset``, the
ISBI ``variant``). They are given as ``DATASET.OPTION=VALUE`` on the command line
(``bench run --dataset-option lgg_mri.subset=tumour``) and under ``dataset_options:`` in a profile
(``lgg_mri.subset: tumour``), checked against the dataset's declaration before anything runs, recorded
with every result (``data_options``) and part of the prepared-data cache key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.datasets import DATASETS, canonical_name, dataset_info
from bench.errors import InvalidInput

_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class DatasetOption:
    """One option of a dataset: its ``name``, ``default`` (its type is the option's type: str, int or bool),
    the allowed ``choices`` (empty: any value of that type) and a one-line ``help``."""

    name: str
    default: str | int | bool
    choices: tuple[str | int, ...] = ()
    help: str = ""

    def parse(self, dataset: str, value: Any) -> str | int | bool:
        """``value`` (a command-line string or a YAML value) as the option's type; ValueError naming the
        dataset, the option and what is allowed."""
        kind = type(self.default)
        out: Any = value
        if kind is bool and isinstance(value, str) and value.lower() in _TRUE + _FALSE:
            out = value.lower() in _TRUE
        elif kind is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            out = int(value)
        if type(out) is not kind:
            raise InvalidInput(f"{dataset}: option {self.name}={value!r}: expected {self.allowed()}")
        if self.choices and out not in self.choices:
            raise InvalidInput(f"{dataset}: option {self.name}={value!r}: expected {self.allowed()}")
        return out

    def allowed(self) -> str:
        """What the option accepts, in words."""
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        return {bool: "true or false", int: "an integer", str: "a string"}[type(self.default)]

    def describe(self) -> str:
        """``subset (all|tumour, default all): help`` for error messages and ``bench list``."""
        allowed = "|".join(map(str, self.choices)) if self.choices else type(self.default).__name__
        return f"{self.name} ({allowed}, default {self.default}){': ' + self.help if self.help else ''}"


def resolve_options(dataset: str, declared: tuple[DatasetOption, ...], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option of ``dataset`` with its value: the ``given`` one (parsed) or the default.
    An option the dataset does not declare is a ValueError that lists the ones it does."""
    by_name = {o.name: o for o in declared}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        known = "; ".join(o.describe() for o in declared) or "none"
        raise InvalidInput(f"{dataset}: no option {', '.join(map(repr, unknown))}; its options: {known}")
    return {o.name: o.parse(dataset, given[o.name]) if o.name in given else o.default for o in declared}


def parse_dataset_options(pairs: Mapping[str, Any], where: str) -> tuple[tuple[str, Any], ...]:
    """``{"lgg_mri.subset": "tumour", "mri.subset": ...}`` checked against the registry: sorted
    ``(("lgg_mri.subset", "tumour"), ...)`` with canonical dataset names and typed values. ``where``
    (``--dataset-option``, ``profile quick.yaml``) starts every error message."""

    out: dict[str, Any] = {}
    for key, value in pairs.items():
        dataset, sep, option = str(key).partition(".")
        if not sep or not dataset or not option:
            raise InvalidInput(f"{where}: {key!r}: expected DATASET.OPTION (e.g. lgg_mri.subset)")
        try:
            name = canonical_name(dataset)
        except KeyError as exc:
            raise InvalidInput(f"{where}: {key!r}: {exc.args[0]}") from None
        declared = getattr(DATASETS.get(name).factory, "OPTIONS", ())
        try:
            resolved = resolve_options(name, declared, {option: value})
        except ValueError as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        out[f"{name}.{option}"] = resolved[option]
    return tuple(sorted(out.items()))


def options_of(dataset: str, pairs: tuple[tuple[str, Any], ...]) -> dict[str, Any]:
    """Every declared option of ``dataset`` (canonical name): its value among ``parse_dataset_options``'
    pairs, else its default."""

    prefix = f"{dataset}."
    given = {key[len(prefix) :]: value for key, value in pairs if key.startswith(prefix)}
    return resolve_options(dataset, getattr(dataset_info(dataset), "OPTIONS", ()), given)
