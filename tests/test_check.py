"""`bench check`: two layers. The scoring layer re-scores stored predictions exactly; the training layer
re-trains within noise-floor tolerances. Passes unchanged and under other CPU kernels; fails on each
deliberate change, naming the layer."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench import check as chk
from bench.cli import main

SELECTION = {"archs": "unet,mildnet", "datasets": "dsb2018"}
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline")
    committed = json.loads((REPO / "results" / "baseline" / "meta.json").read_text())
    chk.update(path, "test baseline", noise_floor=committed["noise_floor"], **SELECTION)
    return path


def copy_baseline(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def with_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **changes: object) -> None:
    """Point the profile folder at a copy whose check profile has ``changes``."""
    import yaml

    import bench.config

    raw = yaml.safe_load((bench.config.PROFILE_DIR / "check.yaml").read_text())
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "check.yaml").write_text(yaml.safe_dump({**raw, **changes}))
    monkeypatch.setattr(bench.config, "PROFILE_DIR", tmp_path / "profiles")


def test_update_stores_predictions_references_and_metadata(baseline: Path) -> None:
    meta = json.loads((baseline / "meta.json").read_text())
    assert meta["reason"] == "test baseline" and "git_sha" in meta and meta["selection"] == SELECTION
    assert meta["tolerances"]["dice"]["abs"] > 0 and meta["environment"]["torch"]
    rows = pd.read_parquet(baseline / "rows.parquet")
    assert set(rows["arch"]) == {"unet", "mildnet"} and set(rows["dataset"]) == {"dsb2018"}
    assert sorted(p.parent.name for p in (baseline / "predictions").glob("*/*/*.npz")) == ["mildnet", "unet"]
    assert (baseline / "references" / "dsb2018.npz").exists()
    # every stored row (val and test) has its prediction: re-scoring gives them all back
    assert len(chk.rescore(baseline, rows)) == len(rows) and set(rows["split"]) == {"val", "test"}


def test_unchanged_tree_passes_both_layers(baseline: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--baseline", str(baseline)]) == 0
    out = capsys.readouterr().out
    assert "scoring layer: OK" in out and "training layer: OK" in out and "bench check: OK" in out
    assert "augmentation layer: OK (9 transforms" in out
    assert out.startswith("environment: as the baseline's") and "cpu_capability" in out


def test_changed_metric_fails_the_scoring_layer(
    baseline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import bench.run.scoring

    real = bench.run.scoring.image_metrics
    monkeypatch.setattr(
        bench.run.scoring,
        "image_metrics",
        lambda ref, pred: {**real(ref, pred), "hd": real(ref, pred)["hd"] * 1.01 + 0.01},
    )
    assert main(["check", "--baseline", str(baseline), "--layer", "scoring"]) == 1
    out = capsys.readouterr().out
    assert "scoring layer: DRIFT" in out and "DRIFT in the scoring layer" in out
    assert "dsb2018" in out and "syn" in out and " hd " in out  # the drifted rows are named


def test_changed_empty_mask_rule_fails_the_scoring_layer(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.metrics

    rows = pd.read_parquet(baseline / "rows.parquet")
    assert (rows["empty_pred"] != rows["empty_ref"]).any(), "fixture needs an image with exactly one empty mask"
    real = bench.metrics._empty_rule
    monkeypatch.setattr(
        bench.metrics,
        "_empty_rule",
        lambda n_ref, n_pred, shape: None if real(n_ref, n_pred, shape) is None else 2 * real(n_ref, n_pred, shape),
    )
    result = chk.check(baseline, layers=("scoring",))
    assert not result.ok and {"hd", "hd95"} <= set(result.layer("scoring").drifted["column"])


def test_changed_threshold_fails_the_scoring_layer(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run.scoring

    monkeypatch.setattr(bench.run.scoring, "THRESHOLD", 0.6)
    result = chk.check(baseline, layers=("scoring",))
    assert not result.layer("scoring").ok and "tp" in set(result.layer("scoring").drifted["column"])


def test_changed_init_fails_the_training_layer(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.architectures._blocks as blocks

    real = blocks.init_weights
    monkeypatch.setattr(blocks, "init_weights", lambda module, mode="xavier_uniform": real(module, "xavier_normal"))
    result = chk.check(baseline)
    assert result.layer("scoring").ok and not result.layer("training").ok
    assert {"dice", "iou"} & set(result.layer("training").drifted["column"])


def test_changed_recipe_default_fails_the_training_layer(
    baseline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with_profile(monkeypatch, tmp_path, lr=0.002)
    result = chk.check(baseline, layers=("training",))
    assert not result.ok and not result.layer("training").drifted.empty


def test_removed_mlr_identity_fails_the_training_layer(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.architectures._blocks import MLRBlock

    def no_outer_identity(self: MLRBlock, x):
        h = x
        for level in self.levels:
            h = level(h) + h
        return h

    monkeypatch.setattr(MLRBlock, "forward", no_outer_identity)
    result = chk.check(baseline, layers=("training",))
    drifted = result.layer("training").drifted
    assert not result.ok and set(drifted["arch"]) == {"mildnet"}  # U-Net has no MLR block: unchanged


def test_other_thread_count_passes_the_training_layer(
    baseline: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with_profile(monkeypatch, tmp_path, threads=2)
    result = chk.check(baseline, layers=("training",))
    assert result.ok, chk.format_result(result, 0)


@pytest.mark.slow
def test_other_cpu_kernels_pass(baseline: Path) -> None:
    """ATen, oneDNN and MKL kernels for AVX2, as another processor would pick: still no drift."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    out = subprocess.run(
        [sys.executable, "-m", "bench.cli", "check", "--baseline", str(baseline)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "information: differs in ATEN_CPU_CAPABILITY" in out.stdout and "bench check: OK" in out.stdout


def test_missing_rows_and_flipped_verdicts_fail_both_layers(baseline: Path, tmp_path: Path) -> None:
    broken = copy_baseline(baseline, tmp_path / "b")
    rows = pd.read_parquet(broken / "rows.parquet")
    rows.iloc[1:].to_parquet(broken / "rows.parquet", index=False)
    derived = json.loads((broken / "derived.json").read_text())
    for t in derived["tests"]:
        t["significant"] = not t["significant"]
    (broken / "derived.json").write_text(json.dumps(derived))
    result = chk.check(broken)
    for name in ("scoring", "training"):
        layer = result.layer(name)
        assert len(layer.new) == 1 and layer.missing.empty  # today's run has the row the baseline lost
    assert len(result.layer("training").flips) == len(derived["tests"])
    assert any("baseline integrity" in e for e in result.layer("scoring").errors)
    text = chk.format_result(result, 0.0)
    assert (
        "1 new row(s)" in text and "verdict(s) flipped" in text and "DRIFT in the scoring and training layers" in text
    )


def test_lost_prediction_is_a_missing_row(baseline: Path, tmp_path: Path) -> None:
    broken = copy_baseline(baseline, tmp_path / "b")
    next((broken / "predictions").glob("*/unet/*.npz")).unlink()
    layer = chk.check(broken, layers=("scoring",)).layer("scoring")
    assert not layer.ok and set(layer.missing["arch"]) == {"unet"}


def test_tolerance_parsing_and_rules() -> None:
    tol = chk.parse_tolerances("dice=0.01,hd=0.5:0.1,tp=3")
    assert tol["dice"].allows([0.5], [0.509]).all() and not tol["dice"].allows([0.5], [0.52]).any()
    assert tol["hd"].allows([10.0], [10.9]).all() and tol["tp"].allows([10], [13]).all()
    assert not tol["tp"].allows([10], [14]).any()
    assert chk.Tolerance(0).allows([float("inf"), float("nan")], [float("inf"), float("nan")]).all()
    with pytest.raises(ValueError, match="unknown column"):
        chk.parse_tolerances("dcie=0.1")


def test_update_needs_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["check", "--update", "--baseline", str(tmp_path)]) == 2
    assert "--reason" in capsys.readouterr().err


def test_committed_baseline_is_complete_and_rescores_exactly() -> None:
    """The repository's baseline covers every paper network on every synthetic stand-in, records its
    noise floor, and its stored predictions re-score to its rows on this machine."""
    from bench.architectures import PAPER_ARCHS
    from bench.datasets import PAPER_DATASETS

    base = REPO / "results" / "baseline"
    rows = pd.read_parquet(base / "rows.parquet")
    assert set(rows["arch"]) == set(PAPER_ARCHS) and set(rows["dataset"]) == set(PAPER_DATASETS)
    assert set(rows["source"]) == {"synthetic"}
    meta = json.loads((base / "meta.json").read_text())
    assert meta["noise_floor"]["variations"] and meta["tolerances"]
    result = chk.check(base, layers=("augmentation", "scoring"))
    assert result.ok, chk.format_result(result, 0)
    assert (base / chk.AUGMENTED_ROWS).is_file() and not chk.integrity_errors(base, meta)


# ------------------------------------------------------------------------- the augmentation layer


def _changed_pipeline(monkeypatch: pytest.MonkeyPatch, index: int, **changes: object) -> None:
    """Today's code builds the paper's pipeline with transform ``index`` changed (as an edit of augment.py would)."""
    from bench.datasets import augment

    real = augment.paper_augmentation

    def changed(seed: int):
        pipeline = real(seed)
        for name, value in changes.items():
            setattr(pipeline.transforms[index], name, value)
        return pipeline

    monkeypatch.setattr(augment, "paper_augmentation", changed)


@pytest.mark.parametrize(
    ("index", "changes", "named"),
    [
        (1, {"p": 0.4}, "transform HorizontalFlip (position 1): parameters changed: p 0.5 -> 0.4"),
        (4, {"alpha": 100.0}, "transform ElasticTransform (position 4): parameters changed: alpha 120.0 -> 100.0"),
    ],
)
def test_changed_augmentation_fails_the_augmentation_layer_naming_the_transform(
    baseline: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    index: int,
    changes: dict,
    named: str,
) -> None:
    _changed_pipeline(monkeypatch, index, **changes)
    assert main(["check", "--baseline", str(baseline), "--layer", "augmentation"]) == 1
    out = capsys.readouterr().out
    assert "augmentation layer: DRIFT" in out and named in out
    assert f"transform {named.split()[1]} (position {index}): outputs differ on" in out  # seen in the outputs too


def test_changed_augmentation_outputs_alone_fail(baseline: Path, tmp_path: Path) -> None:
    """Same parameters, other outputs (another library version would do this): still a drift, named."""
    import numpy as np

    broken = copy_baseline(baseline, tmp_path / "b")
    with np.load(broken / "augmentation.npz") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["2_masks"][0] ^= 1  # VerticalFlip, first image
    np.savez_compressed(broken / "augmentation.npz", **arrays)
    errors = chk.check(broken, layers=("augmentation",)).layer("augmentation").errors
    assert errors == ["transform VerticalFlip (position 2): outputs differ on 1 of 48 fixed images (1 masks, 0 images)"]


def test_unchanged_augmentation_passes_and_update_of_that_layer_alone(baseline: Path, tmp_path: Path) -> None:
    assert chk.check(baseline, layers=("augmentation",)).ok
    copy = copy_baseline(baseline, tmp_path / "b")
    (copy / "augmentation.json").unlink()
    assert not chk.check(copy, layers=("augmentation",)).ok
    rows_before = (copy / "rows.parquet").read_bytes()
    chk.update_augmentation(copy, "augmentation layer added")
    assert (
        chk.check(copy, layers=("augmentation", "scoring")).ok and (copy / "rows.parquet").read_bytes() == rows_before
    )
    assert json.loads((copy / "meta.json").read_text())["history"][-1]["layers"] == ["augmentation"]


# ------------------------------------------------------------- metrics and statistics fail by name


def test_boundary_rule_change_is_a_named_drift_not_an_internal_error(
    baseline: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """borderValue=1 in the boundary rule: a full mask has no boundary, and HD95's percentile raised."""
    import cv2
    import numpy as np

    from bench import metrics

    def side(mask):
        boundary = mask - cv2.erode(mask, metrics._CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        dist = cv2.distanceTransform(1 - boundary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return metrics._Side(mask, np.flatnonzero(boundary), dist)

    monkeypatch.setattr(metrics, "_side", side)
    assert main(["check", "--baseline", str(baseline), "--layer", "scoring"]) == 1
    captured = capsys.readouterr()
    assert "internal error" not in captured.err and "Traceback" not in captured.err
    assert "scoring layer: DRIFT" in captured.out
    assert "changed result (metrics)" in captured.out or " hd95 " in captured.out


def test_statistics_change_is_a_changed_result_not_baseline_integrity(
    baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from bench.analysis import stats

    real = stats.adjust

    def doubled(p, correction: str = "holm", alpha: float = 0.05):  # a changed correction: p-values doubled
        p_adj, significant = real(p, correction, alpha)
        return np.minimum(np.asarray(p_adj) * 2, 1.0), significant

    monkeypatch.setattr(stats, "adjust", doubled)
    errors = chk.check(baseline, layers=("scoring",)).layer("scoring").errors
    assert errors and all(e.startswith("changed result (statistics): tests.") for e in errors)
    assert not any("baseline integrity" in e for e in errors)


def test_exact_columns_say_exact(baseline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.run.scoring

    monkeypatch.setattr(bench.run.scoring, "THRESHOLD", 0.6)
    text = chk.format_result(chk.check(baseline, layers=("scoring",)), 0.0)
    table = text.split("largest first", 1)[1]
    assert " exact" in table and "e+300" not in table and "e+11" not in table


def test_environment_shown_harmless_by_the_noise_floor_is_one_information_line() -> None:
    meta = json.loads((REPO / "results" / "baseline" / "meta.json").read_text())
    harmless = chk.harmless_environment(meta["noise_floor"])
    assert "OMP_NUM_THREADS" in harmless and "threads" in harmless
    then = {"torch": "2.1", "OMP_NUM_THREADS": "1", "threads": 1, "cpu_capability": "AVX512"}
    now = {"torch": "2.2", "threads": 2, "cpu_capability": "AVX2"}
    lines = chk.format_environment(chk.CheckResult([], {"baseline": then, "now": now}, harmless))
    assert "(differs)" not in "\n".join(lines)
    info = [ln for ln in lines if "information:" in ln]
    assert len(info) == 1 and "OMP_NUM_THREADS 1 -> unset" in info[0] and "threads 1 -> 2" in info[0]
    assert "cpu_capability AVX512 -> AVX2" in info[0]
    assert any("torch 2.1 -> 2.2: not covered by the noise floor" in ln for ln in lines)
    same = chk.format_environment(chk.CheckResult([], {"baseline": now, "now": now}, harmless))
    assert len(same) == 1 and same[0].startswith("environment: as the baseline's")


def test_training_with_augmentation_switched_off_fails_the_training_layer(
    baseline: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The training layer's job with augmentation on: training code that stops augmenting is seen there."""
    import bench.run.execute

    monkeypatch.setattr(bench.run.execute, "make_augment", lambda job, seed: None)
    layer = chk.check(baseline, layers=("training",)).layer("training")
    arch, _ = chk.AUGMENTED_JOB
    assert not layer.ok and set(layer.drifted["arch"]) == {f"{arch}+augment"}  # the other jobs train unaugmented
