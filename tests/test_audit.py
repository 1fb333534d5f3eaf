"""``bench audit``: verdicts computed from the results folder, different for a 3-seed and a 1-seed folder."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml
from results_fixture import make_results, make_sidecars

from bench.analysis import audit
from bench.cli import main
from bench.datasets.splits import Split

TINY = ["--set", "epochs=1", "--set", "image_size=32", "--set", "width=4", "--set", "depth=3"]


def _run(results: Path, *extra: str) -> None:
    base = ["run", "--arch", "unet,mildnet", "--dataset", "dsb2018", "--folds", "0", "--jobs", "1"]
    assert main([*base, *TINY, "--results", str(results), *extra]) == 0


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    results = tmp_path_factory.mktemp("audit") / "results"
    _run(results, "--seeds", "0,1,2")
    return results


def _items(text: str) -> dict[str, str]:
    """check title -> status, from the text output."""
    out = {}
    for line in text.splitlines():
        status, _, rest = line.partition("  ")
        if status in (audit.PASS, audit.WARN, audit.FAIL):
            out[rest.split(":")[0]] = status
    return out


def test_three_seeds_and_one_seed_get_different_verdicts(results: Path, capsys: pytest.CaptureFixture) -> None:
    """The same folder whole (3 seeds) and cut to seed 0 (``--where seed=0``: a single-seed, untuned folder)."""
    capsys.readouterr()
    three, one = ["--results", str(results)], ["--results", str(results), "--where", "seed=0"]
    assert main(["audit", *three]) == 0  # it reports; only --strict fails
    a = capsys.readouterr().out
    assert main(["audit", *one]) == 0
    b = capsys.readouterr().out
    assert _items(a)["Training seeds"] == audit.PASS and "3 seeds per fold model (seeds 0, 1, 2)" in a
    assert _items(b)["Training seeds"] == audit.WARN and "1 seed: training variability not measured" in b
    assert len(_items(a)) == len(_items(b)) == 11
    for text in (a, b):  # the same untuned recipe for all: a warning with its fix
        assert _items(text)["Baselines tuned with the same grid and budget"] == audit.WARN
        assert "no tuning records" in text and "bench tune --name" in text
        assert _items(text)["Test data never used for selection or tuning"] == audit.PASS
        assert _items(text)["Like-for-like configurations"] == audit.PASS
        assert _items(text)["Compute reported beside accuracy"] == audit.PASS
    assert "6 of 6 jobs" in a and "2 of 2 jobs" in b
    assert audit.FAIL in _items(b).values()  # 10 test images, 2 fold models of one epoch: something fails
    assert main(["audit", *one, "--strict"]) == 1
    assert main(["audit", *one, "--format", "md"]) == 0
    assert "| status | check | evidence | fix |" in capsys.readouterr().out


def _folder(tmp_path: Path, profile: str = "quick") -> audit.Folder:
    df = make_results(datasets=("isic2018",), archs=("unet", "mildnet"), protocols=("holdout",), n_cases=30)
    df = df.assign(profile=profile)
    return audit.Folder(df, make_sidecars(df), tmp_path)


def _tuned(tmp_path: Path, mode: str, archs: tuple[str, ...] = ("unet", "mildnet")) -> None:
    (tmp_path / "tuned").mkdir()
    doc = {"name": "lr", "mode": mode, "grid": {"lr": [0.001, 0.01]}, "chosen": {"isic2018": {a: {} for a in archs}}}
    (tmp_path / "tuned" / "lr.yaml").write_text(yaml.safe_dump(doc))


def test_tuning_records_decide_the_tuning_item(tmp_path: Path) -> None:
    assert audit.check_tuning(_folder(tmp_path))[0] == audit.WARN  # untuned
    _tuned(tmp_path, "fair")
    assert audit.check_tuning(_folder(tmp_path))[0] == audit.WARN  # tuned, but the results did not use it
    status, evidence, _ = audit.check_tuning(_folder(tmp_path, "tuned-lr"))
    assert status == audit.PASS and "same grid" in evidence
    (tmp_path / "tuned" / "lr.yaml").unlink()
    (tmp_path / "tuned").rmdir()
    _tuned(tmp_path, "paper: tuned on mildnet only")
    status, evidence, fix = audit.check_tuning(_folder(tmp_path, "tuned-lr"))
    assert status == audit.FAIL and "one architecture only" in evidence and "bench tune" in fix


def test_a_test_image_in_a_training_fold_fails(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    test = sorted(folder.df.loc[folder.df["split"] == "test", "case_id"].unique())
    others = sorted(set(folder.df["case_id"]) - set(test))
    split = Split(12345, "holdout", tuple(test), ((tuple(others[1:]), (others[0],)), ((test[0], *others[1:]), ())))
    path = tmp_path / "splits" / "s.json"
    path.parent.mkdir()
    split.save(path)
    sides = [{**s, "job": {**s["job"], "split_path": str(path)}} for s in folder.sidecars]
    status, evidence, _ = audit.check_test_data(audit.Folder(folder.df, sides, tmp_path))
    assert status == audit.FAIL and "fold 1: 1 test id(s) in train/selection/validation" in evidence
    clean = Split(12345, "holdout", tuple(test), ((tuple(others[1:]), (others[0],)),))
    clean.save(path)
    assert audit.check_test_data(audit.Folder(folder.df, sides, tmp_path))[0] == audit.PASS


def test_models_that_did_not_learn_and_external_cohorts(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert audit.check_learning(folder)[0] == audit.WARN  # the fixture predates the flag
    flagged = folder.df.assign(did_not_learn=folder.df["arch"] == "unet")
    status, evidence, _ = audit.check_learning(audit.Folder(flagged, folder.sidecars, tmp_path))
    assert status == audit.FAIL and "isic2018/unet/holdout/fold 0/seed 0" in evidence
    assert audit.check_external(folder)[0] == audit.WARN
    ext = folder.df[folder.df["split"] == "test"].assign(split="external")
    both = pd.concat([folder.df, ext], ignore_index=True)
    assert audit.check_external(audit.Folder(both, folder.sidecars, tmp_path))[0] == audit.PASS


def test_report_is_seed_aware_and_recomputes_from_the_export(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`bench report --all` on the 3-seed folder: the audit first, seed-aware Table 5, tests and ranks, the
    suitability table and the Pareto figure; the suitability ratio and the seed-aware unit-level test
    recomputed from `bench export`'s rows."""
    import numpy as np
    from scipy import stats as sps

    out = tmp_path / "report"
    assert main(["report", "--all", "--results", str(results), "--out", str(out)]) == 0
    index = (out / "index.md").read_text()
    sections = [line for line in index.splitlines() if line.startswith("## ")]
    assert sections[0].startswith("## Validation audit") and "Training seeds: 3 seeds per fold model" in index
    table5 = (out / "tables" / "table5.md").read_text()
    assert "Dice seed sd" in table5 and "3 seeds per fold model" in table5
    assert "averaged over 3 seeds" in (out / "tables" / "tests_holdout.md").read_text()
    assert "3 seeds per architecture resampled" in (out / "tables" / "ranks.md").read_text()
    assert (out / "figures" / "pareto.png").stat().st_size > 0
    suit = pd.read_csv(out / "tables" / "suitability.csv", comment="#").set_index("metric")
    capsys.readouterr()
    assert main(["export", "--results", str(results), "--format", "csv", "--out", str(tmp_path / "rows.csv")]) == 0
    rows = pd.read_csv(tmp_path / "rows.csv")
    test = rows[(rows["protocol"] == "holdout") & (rows["split"] == "test")]
    models = test.groupby(["arch", "fold", "seed"])["dice"].mean()
    between = np.var(models.groupby("arch").mean().to_numpy(), ddof=1)
    within = np.mean([np.var(g.to_numpy(), ddof=1) for _, g in models.groupby("arch")])
    assert suit.loc["dice", "ratio"] == pytest.approx(between / within, rel=1e-9)
    per_unit = test.groupby(["arch", "case_id"])["iou"].mean().unstack("arch")  # over folds and seeds
    expected = sps.ttest_rel(per_unit["mildnet"], per_unit["unet"])
    tests = pd.read_csv(out / "tables" / "tests_holdout.csv", comment="#").iloc[0]
    assert tests["p_raw"] == pytest.approx(expected.pvalue, rel=1e-9)
