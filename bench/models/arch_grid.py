"""Architecture constructor arguments as tuning-grid keys (Table 3's dilation rates and levels).

A grid key ``arch.NAME`` sets constructor argument ``NAME`` of the architecture (``arch.dilations``,
``arch.levels``, ``arch.mlr_levels`` of MILDNet; ``arch.se_ratio`` of ResDUNet; ...). Its values are
written ``1-3-5`` for a tuple of integers (a YAML list in a grid file), or as plain numbers and
``true``/``false``. They reach the network through the job's ``arch_kwargs`` (part of the job key
and of the checkpoint's constructor arguments).

Which architecture takes which key is read from its constructor's signature: every keyword argument
with a default, except those the harness sets from the job (``in_channels``, ``classes`` and the
``width``/``depth``/``init`` settings, tuned as ``--grid width=...``) and those a registry entry of the
same class fixes (``mildnet_no_mlr`` is MILDNet with ``mlr_skips`` false, ``unet_mlr`` U-Net with it
true: that switch names another architecture, it is not a hyper-parameter). Open-ended names (``smp:...``) take none. Each value is checked by building a small network
with it, so a bad value is refused before any job starts, with the constructor's own reason.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from bench.errors import InvalidInput

#: Prefix of an architecture key in a tuning grid or a tuned profile.
PREFIX = "arch."
#: Constructor arguments the harness sets from the job itself; never grid keys of their own.
HARNESS_ARGS = ("in_channels", "classes", "width", "depth", "init")
_RATES = re.compile(r"^\d+(-\d+)+$")


def is_arch_key(key: str) -> bool:
    return key.startswith(PREFIX)


def arg_name(key: str) -> str:
    """``arch.dilations`` -> ``dilations``."""
    return key[len(PREFIX) :]


def parse_value(key: str, value: Any) -> Any:
    """A grid value of ``key`` as Python: ``"1-3-5"`` or a list -> ``(1, 3, 5)``; ``"2"`` -> 2; ``"0.5"`` -> 0.5;
    ``"true"``/``"false"`` -> bool; YAML scalars as they are. ValueError naming the key for anything else."""
    if isinstance(value, (list, tuple)):
        items = tuple(parse_value(key, v) for v in value)
        if not items or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise InvalidInput(f"grid key {key!r}: a list value must hold integers, got {list(value)!r}")
        return items
    if isinstance(value, (bool, int, float)):
        return value
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _RATES.match(text):
        return tuple(int(v) for v in text.split("-"))
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    raise InvalidInput(
        f"grid key {key!r}: cannot read {text!r}; expected integers joined by '-' (1-3-5), a number, true or false"
    )


def format_value(value: Any) -> str:
    """How a value is shown in tables and labels: tuples as ``1-3-5`` (the grid's own syntax)."""
    return "-".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def tunable_args(arch: str) -> dict[str, Any]:
    """Constructor argument -> default for the arguments a grid may set on ``arch`` (see the module docstring)."""
    from bench.architectures import get_arch, list_models

    entry = get_arch(arch)
    if ":" in entry.name:
        return {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    fixed = {k for other in map(get_arch, list_models()) if other.factory is entry.factory for k in other.defaults}
    return {
        name: p.default
        for name, p in inspect.signature(entry.factory).parameters.items()
        if p.kind in kinds
        and p.default is not inspect.Parameter.empty
        and name not in HARNESS_ARGS
        and name not in fixed
    }


def check_name(key: str) -> None:
    """Refuse an architecture key the harness sets itself (``arch.width``: use ``width``)."""
    name = arg_name(key)
    if not name:
        raise InvalidInput(f"grid key {key!r}: name the constructor argument, e.g. arch.dilations")
    if name in HARNESS_ARGS:
        raise InvalidInput(
            f"grid key {key!r}: {name} is set by the harness for every architecture"
            + (f"; tune it as the training setting --grid {name}=..." if name in ("width", "depth", "init") else "")
        )


def _type_problem(default: Any, value: Any) -> str | None:
    if default is None:
        return None
    if isinstance(default, tuple):
        return None if isinstance(value, tuple) else "integers joined by '-' (e.g. 1-3-5)"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else "a number"
    return None if isinstance(value, type(default)) else f"a {type(default).__name__}"


def check_value(arch: str, key: str, value: Any) -> None:
    """Refuse ``value`` for ``key`` on ``arch``: wrong type for the constructor's default, or a value the
    constructor itself rejects (a small network is built with it: 1 channel, width 8, depth 2)."""
    from bench.architectures import create_model

    name = arg_name(key)
    expected = _type_problem(tunable_args(arch)[name], value)
    if expected is not None:
        raise InvalidInput(f"grid key {key}={format_value(value)} for {arch}: expected {expected}")
    try:
        create_model(arch, in_channels=1, classes=1, width=8, depth=2, **{name: value})
    except (ValueError, TypeError) as err:
        raise InvalidInput(f"grid key {key}={format_value(value)} is refused by {arch}: {err}") from err


def check_arch_keys(values: Mapping[str, Sequence[Any]], archs: Sequence[str], how: str = "") -> None:
    """Every architecture key of ``values`` (key -> values) must be taken by every architecture of ``archs``,
    with every value; ValueError naming the key and the architecture(s) that do not take it. ``how``: what
    the caller can do instead (appended to the message)."""
    for key, vals in values.items():
        if not is_arch_key(key):
            continue
        check_name(key)
        missing = [a for a in archs if arg_name(key) not in tunable_args(a)]
        if missing:
            takers = sorted({n for a in missing for n in tunable_args(a)})
            raise InvalidInput(
                f"grid key {key!r}: not a constructor argument of {', '.join(missing)} (it takes "
                f"{', '.join(PREFIX + n for n in takers) or 'no architecture keys'}){how}"
            )
        for arch in archs:
            for value in vals:
                check_value(arch, key, value)


def same_constructor(a: str, b: str) -> bool:
    """Do registry entries ``a`` and ``b`` build the same class (so an argument means the same to both)?"""
    from bench.architectures import get_arch

    return get_arch(a).factory is get_arch(b).factory


def split_point(point: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(training settings, constructor arguments) of a grid point; the arguments without the prefix."""
    train = {k: v for k, v in point.items() if not is_arch_key(k)}
    kwargs = {arg_name(k): v for k, v in point.items() if is_arch_key(k)}
    return train, kwargs


def to_json(kwargs: Mapping[str, Any]) -> str:
    """The job's ``arch_kwargs`` text: sorted keys, tuples as lists (what ``json.loads`` gives back)."""
    return json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()}, sort_keys=True)


def from_json(text: str | None) -> dict[str, Any]:
    """``arch.NAME`` -> value from a job's ``arch_kwargs`` text, lists back to tuples (as in a grid point)."""
    loaded = json.loads(text or "{}")
    return {PREFIX + k: tuple(v) if isinstance(v, list) else v for k, v in loaded.items()}


def plain(value: Any) -> Any:
    """A value as YAML/JSON can hold it (tuples as lists)."""
    return list(value) if isinstance(value, tuple) else value
