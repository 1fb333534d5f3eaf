"""`bench check`: passes on an unchanged tree, names every drifted row, missing rows and verdict flips."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from bench import check as chk
from bench.cli import main

SELECTION = {"archs": "unet,mildnet", "datasets": "dsb2018"}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline")
    chk.update(path, "test baseline", **SELECTION)
    return path


def copy_baseline(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_update_records_reason_sha_and_selection(baseline: Path) -> None:
    meta = json.loads((baseline / "meta.json").read_text())
    assert meta["reason"] == "test baseline" and "git_sha" in meta and meta["selection"] == SELECTION
    rows = pd.read_parquet(baseline / "rows.parquet")
    assert set(rows["arch"]) == {"unet", "mildnet"} and set(rows["dataset"]) == {"dsb2018"}
    derived = json.loads((baseline / "derived.json").read_text())
    assert derived["tests"] and derived["tests"][0]["other"] == "unet"


def test_unchanged_tree_passes(baseline: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--baseline", str(baseline)]) == 0
    assert "bench check: OK: no drift" in capsys.readouterr().out


def test_changed_metric_implementation_is_drift(baseline: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    import bench.evaluate

    real = bench.evaluate.image_metrics

    def off_by_a_bit(ref, pred):
        out = real(ref, pred)
        return {**out, "hd": out["hd"] * 1.01 + 0.01}

    monkeypatch.setattr(bench.evaluate, "image_metrics", off_by_a_bit)
    assert main(["check", "--baseline", str(baseline)]) == 1
    out = capsys.readouterr().out
    assert "drifted value(s)" in out and "hd" in out and "DRIFT" in out
    # the drifted rows are named: dataset, arch, case and the old and new values
    assert "dsb2018" in out and "mildnet" in out and "syn0" in out


def test_changed_default_is_drift(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.architectures._blocks as blocks

    real = blocks.init_weights
    monkeypatch.setattr(blocks, "init_weights", lambda module, mode="xavier_uniform": real(module, "xavier_normal"))
    result = chk.check(baseline)
    assert not result.ok and not result.drifted.empty
    assert {"dice", "iou"} & set(result.drifted["metric"])


def test_missing_rows_and_flipped_verdicts_are_drift(baseline: Path, tmp_path: Path) -> None:
    broken = copy_baseline(baseline, tmp_path / "b")
    rows = pd.read_parquet(broken / "rows.parquet")
    rows.iloc[1:].to_parquet(broken / "rows.parquet", index=False)
    derived = json.loads((broken / "derived.json").read_text())
    for t in derived["tests"]:
        t["significant"] = not t["significant"]
    (broken / "derived.json").write_text(json.dumps(derived))
    result = chk.check(broken)
    assert len(result.new) == 1 and result.missing.empty  # the re-run has the row the baseline lost
    assert len(result.flips) == len(derived["tests"])
    assert result.derived_errors  # stored numbers no longer re-derive from the stored rows
    text = chk.format_result(result, 0.0)
    assert "1 new row(s)" in text and "verdict(s) flipped" in text


def test_tolerance_parsing_and_rules() -> None:
    tol = chk.parse_tolerances("dice=0.01,hd=0.5:0.1")
    assert tol["dice"].allows(pd.Series([0.5]).to_numpy(), pd.Series([0.509]).to_numpy()).all()
    assert not tol["dice"].allows(pd.Series([0.5]).to_numpy(), pd.Series([0.52]).to_numpy()).any()
    assert tol["hd"].allows(pd.Series([10.0]).to_numpy(), pd.Series([10.9]).to_numpy()).all()
    with pytest.raises(ValueError, match="unknown metric"):
        chk.parse_tolerances("dcie=0.1")


def test_update_needs_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--update", "--baseline", str(tmp_path)]) == 2
    assert "--reason" in capsys.readouterr().err


def test_committed_baseline_is_complete() -> None:
    """The repository's baseline covers every paper network on every synthetic stand-in."""
    from bench.architectures import PAPER_ARCHS
    from bench.datasets import PAPER_DATASETS

    base = Path(__file__).resolve().parents[1] / "results" / "baseline"
    rows = pd.read_parquet(base / "rows.parquet")
    assert set(rows["arch"]) == set(PAPER_ARCHS) and set(rows["dataset"]) == set(PAPER_DATASETS)
    assert set(rows["source"]) == {"synthetic"}
    assert not chk.rederive_errors(rows, json.loads((base / "derived.json").read_text()))
