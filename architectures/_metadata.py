"""The architecture registry's metadata, computed once and stored with the package.

Reports, exports and ``bench list`` need each network's display name, its rows in the paper's tables and
its parameter and MAC counts, but not the network: reading them from the registry means importing torch
and every architecture module (seconds of CPU), and counting means building each network. So they are
computed here, once, and stored in ``bench/data/architectures.json`` (``bench.registry.stored_metadata``
reads it without torch). Regenerate it after adding or changing an architecture:

    python -m bench.architectures._metadata

``tests/test_registry_metadata.py`` fails while the stored file differs from what this computes.
"""

from __future__ import annotations

import json
from typing import Any

import torch

from bench.architectures import ARCHITECTURES, PAPER_TABLES
from bench.architectures._blocks import count_macs, count_parameters
from bench.registry import METADATA_DIR, source_fingerprint

#: Where the metadata is stored (inside the installed package).
PATH = METADATA_DIR / "architectures.json"
#: The network settings the stored counts are for: ``bench list``'s defaults (paper scale).
COUNTED_AT = {"in_channels": 3, "width": 32, "depth": 5, "size": 256}


def entry_metadata(name: str) -> dict[str, Any]:
    """One entry's metadata: display name, aliases, defaults, paper rows, and its counts at ``COUNTED_AT``."""
    entry = ARCHITECTURES.get(name)
    settings = {k: v for k, v in COUNTED_AT.items() if k != "size"}
    with torch.device("meta"):
        model = ARCHITECTURES.create(name, classes=1, **settings)
    return {
        "display_name": ARCHITECTURES.display_name(name),
        "aliases": list(entry.aliases),
        "defaults": json.loads(json.dumps(entry.defaults, sort_keys=True, default=str)),
        "paper_rows": dict(sorted(entry.paper_rows.items())),
        "parameters": count_parameters(model),
        "macs": count_macs(model, COUNTED_AT["in_channels"], COUNTED_AT["size"]),
    }


def packaged() -> list[str]:
    """The entries the package's own modules register (not those registered on the fly by other code)."""
    return [n for n in ARCHITECTURES.list() if ARCHITECTURES.get(n).origin.startswith(f"{__package__}.")]


def compute() -> dict[str, Any]:
    """The metadata of every architecture of the package (the content of ``PATH``)."""
    return {
        "counted_at": COUNTED_AT,
        "paper_tables": list(PAPER_TABLES),
        "entries": {name: entry_metadata(name) for name in packaged()},
        "sources": source_fingerprint("architecture"),  # stored_metadata ignores the file once these change
    }


def text(metadata: dict[str, Any]) -> str:
    return json.dumps(metadata, indent=1, sort_keys=True) + "\n"


def main() -> None:
    from bench.atomic import atomic_write_text

    atomic_write_text(PATH, text(compute()))
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
