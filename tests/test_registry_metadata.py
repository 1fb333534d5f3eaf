"""The architecture registry's stored metadata (bench/data/architectures.json) is what the registry says.

Reports and ``bench list`` read display names, paper rows and counts from the stored file so that they
need not import torch; this test fails as soon as an architecture is added or changed without
regenerating it (``python -m bench.architectures._metadata``)."""

from __future__ import annotations

import json

from bench.registry import stored_metadata


def test_the_stored_metadata_matches_the_registry() -> None:
    from bench.architectures import _metadata

    stored = json.loads(_metadata.PATH.read_text())
    assert stored == json.loads(_metadata.text(_metadata.compute())), (
        "bench/data/architectures.json is stale: run `python -m bench.architectures._metadata`"
    )
    assert stored_metadata("architecture") == stored


def test_names_and_listing_from_the_stored_metadata_agree_with_the_registry() -> None:
    from bench.analysis import names
    from bench.architectures import ARCHITECTURES, PAPER_ARCHS
    from bench.architectures import paper_archs as live_paper_archs
    from bench.commands.listing import counted_rows

    entries = stored_metadata("architecture")["entries"]
    assert {n: e["display_name"] for n, e in entries.items()} == {n: ARCHITECTURES.display_name(n) for n in entries}
    # the stored paper order is the registry's (names.paper_archs reads the file when torch is not loaded)
    stored_order = [
        n
        for t in ("table5", "table4")
        for n in sorted(
            (n for n, e in entries.items() if t in e["paper_rows"]), key=lambda n: (entries[n]["paper_rows"][t], n)
        )
    ]
    assert tuple(dict.fromkeys(stored_order)) == PAPER_ARCHS == live_paper_archs() == names.paper_archs()
    counted = {r[0]: r[2:] for r in counted_rows("unet*", 3, 32, 5, 256)}
    assert counted == {n: (entries[n]["parameters"], entries[n]["macs"], entries[n]["paper_rows"]) for n in counted}


def test_stale_metadata_is_ignored_and_the_registry_read_instead(monkeypatch) -> None:
    """Once the architecture modules' sources differ from those the stored file was computed from (a network
    added or edited without regenerating it), the file is not used: names come from the registry itself."""
    import bench.registry
    from bench.analysis import names
    from bench.architectures import ARCHITECTURES

    monkeypatch.setattr(bench.registry, "source_fingerprint", lambda kind: "an edited architecture")
    stored_metadata.cache_clear()
    try:
        assert stored_metadata("architecture") == {}
        assert names.arch_names() == ARCHITECTURES.list()
        assert names.canonical_arch("mildnet") == "mildnet"
    finally:
        stored_metadata.cache_clear()
    monkeypatch.undo()
    assert stored_metadata("architecture")["sources"] == bench.registry.source_fingerprint("architecture")
