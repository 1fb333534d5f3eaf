"""A small generic name -> factory registry, shared by architectures and datasets.

Follows lm-eval's registry: a duplicate name raises naming both origins, an unknown name raises
with close matches; listing takes fnmatch wildcards (timm). An entry may carry default keyword
arguments, so one class can back several names (``mildnet_no_mlr`` is ``MILDNet`` with
``mlr_skips=False``). A *prefix* resolves open-ended names such as ``smp:Unet:resnet34``.

This module imports nothing else from the project but ``bench.errors``. ``stored_metadata`` reads what a
registry stores with the package (``bench/data/architectures.json``) so that reports, ``bench list`` and a
sweep's driver need not import torch; it is used only while it matches the registry's source files
(``source_fingerprint``), so an added or edited module is never hidden by a stale file.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.errors import UnknownName

#: Where registries' stored metadata lies (``<kind>s.json``, e.g. ``architectures.json``), with the package.
METADATA_DIR = Path(__file__).resolve().parent / "data"


def source_fingerprint(kind: str) -> str | None:
    """sha256 over the names and contents of the ``.py`` files of the ``kind`` registry's package
    (``bench.<kind>s``), found without importing it; None when it cannot be found."""
    try:
        spec = importlib.util.find_spec(f"bench.{kind}s")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    digest = hashlib.sha256()
    for folder in spec.submodule_search_locations:
        for path in sorted(Path(folder).glob("*.py")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def stored_metadata(kind: str) -> dict[str, Any]:
    """The stored metadata of the ``kind`` registry ("architecture"): what reports, ``bench list`` and the
    planner read without importing the registry's modules (``architectures/_metadata.py`` computes and
    writes it; a test checks it matches the registry). ``{}`` when the package has none for ``kind``, or
    when it was computed from other source files than the package's now (``sources``: an architecture was
    added or edited since): callers then read the registry itself."""
    path = METADATA_DIR / f"{kind}s.json"
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return stored if stored.get("sources") == source_fingerprint(kind) else {}


T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: the factory, its default kwargs and where it was registered.

    ``paper_rows`` places the entry in the tables of the reproduced paper: table key -> row position
    (``{"table4": 0, "table5": 0}``); empty for anything the paper does not report. ``saturates_at_init``
    marks an architecture kept on purpose although its logits at initialisation exceed the bound of
    tests/test_init_stats.py (a reading reproduced as the paper's text gives it); that test checks the mark.
    """

    name: str
    factory: Callable[..., T]
    defaults: dict[str, Any] = field(default_factory=dict)
    origin: str = ""
    aliases: tuple[str, ...] = ()
    display_name: str | None = None
    paper_rows: dict[str, int] = field(default_factory=dict)
    saturates_at_init: bool = False

    def create(self, **kwargs: Any) -> T:
        return self.factory(**{**self.defaults, **kwargs})


def _origin(obj: Any) -> str:
    """Where a registration happened: ``module.qualname (file:line)`` of the registering code."""
    frame = sys._getframe(2)
    name = f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}"
    return f"{name} ({frame.f_code.co_filename}:{frame.f_lineno})"


class Registry(Generic[T]):
    """Registry of factories of kind ``kind`` ("architecture", "dataset")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._aliases: dict[str, str] = {}
        self._prefixes: dict[str, tuple[Callable[..., T], str]] = {}
        self._prefix_checks: dict[str, Callable[[str], Any]] = {}
        self._prefix_names: dict[str, Callable[[str], str]] = {}

    def register(
        self,
        name: str,
        factory: Callable[..., T] | None = None,
        *,
        aliases: tuple[str, ...] = (),
        display_name: str | None = None,
        paper_rows: dict[str, int] | None = None,
        saturates_at_init: bool = False,
        **defaults: Any,
    ) -> Any:
        """Register ``factory`` under ``name`` with default kwargs; without ``factory`` return a decorator.

        ``display_name`` is the spelling reports use ("UNet++"); it defaults to the factory's
        ``display_name`` attribute, then to ``name``. ``paper_rows``, ``saturates_at_init``: see ``Entry``.
        """
        if factory is None:

            def decorator(obj: Callable[..., T]) -> Callable[..., T]:
                self._add(
                    Entry(
                        name,
                        obj,
                        dict(defaults),
                        _origin(obj),
                        tuple(aliases),
                        display_name,
                        dict(paper_rows or {}),
                        saturates_at_init,
                    )
                )
                return obj

            return decorator
        self._add(
            Entry(
                name,
                factory,
                dict(defaults),
                _origin(factory),
                tuple(aliases),
                display_name,
                dict(paper_rows or {}),
                saturates_at_init,
            )
        )
        return factory

    def register_prefix(
        self,
        prefix: str,
        resolver: Callable[..., T],
        check: Callable[[str], Any] | None = None,
        display_name: Callable[[str], str] | None = None,
    ) -> None:
        """Names ``prefix:rest`` are built by ``resolver(rest, **kwargs)``; ``check(rest)``, if given,
        raises KeyError for a ``rest`` that names nothing (``canonical`` calls it); ``display_name(rest)``,
        if given, is the spelling reports use."""
        if prefix in self._prefixes:
            raise ValueError(f"{self.kind} prefix {prefix!r} already registered at {self._prefixes[prefix][1]}")
        self._prefixes[prefix] = (resolver, _origin(resolver))
        if check is not None:
            self._prefix_checks[prefix] = check
        if display_name is not None:
            self._prefix_names[prefix] = display_name

    def _add(self, entry: Entry[T]) -> None:
        for key in (entry.name, *entry.aliases):
            if key in self._entries or key in self._aliases:
                first = self._entries[self._aliases.get(key, key)]
                raise ValueError(
                    f"duplicate {self.kind} name {key!r}: registered by {first.origin} and again by {entry.origin}"
                )
        self._entries[entry.name] = entry
        for alias in entry.aliases:
            self._aliases[alias] = entry.name

    def display_name(self, name: str) -> str:
        entry = self.get(name)
        return entry.display_name or getattr(entry.factory, "display_name", None) or entry.name

    def unregister(self, name: str) -> None:
        """Remove entry ``name`` and its aliases (for entries registered on the fly, e.g. in tests)."""
        entry = self._entries.pop(self.canonical(name))
        for alias in entry.aliases:
            del self._aliases[alias]

    def in_paper(self, table: str) -> tuple[str, ...]:
        """Names of the entries in the paper's ``table`` (e.g. ``"table5"``), in that table's row order."""
        rows = {n: e.paper_rows[table] for n, e in self._entries.items() if table in e.paper_rows}
        return tuple(sorted(rows, key=lambda n: (rows[n], n)))

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (resolving aliases); raises KeyError with suggestions."""
        if name in self._entries:
            return name
        if name in self._aliases:
            return self._aliases[name]
        if ":" in name and name.split(":", 1)[0] in self._prefixes:
            prefix, rest = name.split(":", 1)
            if prefix in self._prefix_checks:
                self._prefix_checks[prefix](rest)
            return name
        known = sorted([*self._entries, *self._aliases])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        prefixes = f" (or a prefixed name: {', '.join(p + ':...' for p in self._prefixes)})" if self._prefixes else ""
        raise UnknownName(f"unknown {self.kind} {name!r}{hint} Known: {', '.join(sorted(self._entries))}{prefixes}")

    def get(self, name: str) -> Entry[T]:
        key = self.canonical(name)
        if key in self._entries:
            return self._entries[key]
        prefix, rest = key.split(":", 1)
        resolver = self._prefixes[prefix][0]
        shown = self._prefix_names[prefix](rest) if prefix in self._prefix_names else None
        return Entry(key, lambda **kw: resolver(rest, **kw), {}, self._prefixes[prefix][1], display_name=shown)

    def create(self, name: str, **kwargs: Any) -> T:
        """Build the entry ``name`` with its defaults overridden by ``kwargs``."""
        return self.get(name).create(**kwargs)

    def list(self, pattern: str | list[str] = "*") -> list[str]:
        """Registered names matching fnmatch pattern(s), sorted, in registration-independent order."""
        patterns = [pattern] if isinstance(pattern, str) else pattern
        return sorted(n for n in self._entries if any(fnmatch.fnmatchcase(n, p) for p in patterns))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._entries or name in self._aliases)

    def __len__(self) -> int:
        return len(self._entries)
