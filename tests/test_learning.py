"""The "did not learn" flag: decided from a job's scored rows and history, stored with its results,
shown by the run summary, the Table 5 caption, the Fig. 8 title and the report index."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.analysis import tables
from bench.analysis.learning import COLUMN, Learning, assess, caption_note, report_lines
from bench.analysis.summary import format_summary, not_learned_lines, summary_with_learning
from bench.report.figures import fig8_figure
from bench.results import store
from bench.run.reproduce import run_commands
from bench.run.scoring import score

S = 16  # image side


def masks(n: int, seed: int = 0) -> np.ndarray:
    """``n`` reference masks, each one square of foreground (some images empty)."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, S, S), bool)
    for i in range(n):
        if i % 4 != 3:
            r, c, k = *rng.integers(0, S - 6, 2), int(rng.integers(3, 6))
            out[i, r : r + k, c : c + k] = True
    return out


def job_rows(pred: np.ndarray, ref: np.ndarray, arch: str, fold: int, protocol: str = "holdout") -> pd.DataFrame:
    """Per-image rows as the runner writes them: the first half of the images 'val', the rest 'test'."""
    ids = [f"img{i:02d}" for i in range(len(ref))]
    rows = score(pred.astype(np.float32), ref, ids, ids)
    half = len(ref) // 2
    split = ["val"] * half + (["test"] * (len(ref) - half) if protocol == "holdout" else ["val"] * (len(ref) - half))
    return rows.assign(
        split=split,
        dataset="dsb2018",
        source="real",
        data_options="{}",
        arch=arch,
        protocol=protocol,
        fold=fold,
        seed=0,
        profile="quick",
        split_hash="h",
        job_key=f"{arch}-{protocol}-{fold}",
    )


HISTORY_IMPROVES = [{"select_loss": 0.7}, {"select_loss": 0.5}, {"select_loss": 0.4}]
HISTORY_FLAT = [{"select_loss": 0.5}, {"select_loss": 0.6}, {"select_loss": 0.5}]


def learning_job(fold: int = 0) -> pd.DataFrame:
    ref = masks(12)
    pred = ref.copy()
    pred[:, :, 0] = False  # nearly right: clearly better than either trivial floor
    return job_rows(pred, ref, "mildnet", fold)


def trivial_job(fold: int = 0) -> pd.DataFrame:
    ref = masks(12)
    return job_rows(np.zeros_like(ref), ref, "unet", fold)


def test_a_learning_job_is_not_flagged() -> None:
    assert assess(learning_job(), HISTORY_IMPROVES) == Learning(())


def test_an_empty_prediction_everywhere_is_flagged_with_its_reasons() -> None:
    verdict = assess(trivial_job(), HISTORY_IMPROVES)
    assert verdict.did_not_learn
    assert any("predicted background on every scored image (12)" in r for r in verdict.reasons)
    assert any("no better than predicting all background" in r for r in verdict.reasons)  # 3 of 6 test refs empty


def test_a_full_prediction_everywhere_is_flagged() -> None:
    ref = masks(12)
    verdict = assess(job_rows(np.ones_like(ref), ref, "unet", 0), HISTORY_IMPROVES)
    assert any("predicted foreground on every scored image" in r for r in verdict.reasons)


def test_no_better_than_the_better_floor_on_the_test_images() -> None:
    """Non-trivial predictions (a random speck per image) that score below predicting all foreground."""
    ref = np.zeros((8, S, S), bool)
    ref[:, 2:14, 2:14] = True  # large foreground: all foreground scores Dice 2*144/(144+256) = 0.72
    pred = np.zeros_like(ref)
    pred[:, 0, 0] = True  # one wrong pixel per image: not trivial, Dice 0
    verdict = assess(job_rows(pred, ref, "unet", 0), HISTORY_IMPROVES)
    assert verdict.reasons == (
        ("mean Dice 0.0000 on the 4 test images is no better than predicting all foreground (0.7200)"),
    )


def test_selection_loss_never_below_epoch_zero() -> None:
    verdict = assess(learning_job(), HISTORY_FLAT)
    assert verdict.reasons == ("selection loss never went below its epoch-0 value 0.5 in 3 epochs",)
    assert not assess(learning_job(), HISTORY_FLAT[:1]).did_not_learn  # one epoch says nothing


def test_cv_jobs_are_judged_on_their_out_of_fold_images() -> None:
    ref = masks(12)
    rows = job_rows(ref.copy(), ref, "mildnet", 0, protocol="cv")
    assert not assess(rows, HISTORY_IMPROVES).did_not_learn
    assert assess(job_rows(np.zeros_like(ref), ref, "unet", 0, protocol="cv"), HISTORY_IMPROVES).did_not_learn


def write_job(results: Path, rows: pd.DataFrame, history: list[dict]) -> dict:
    """A finished job in the store, the way run_job writes it (rows with the flag, sidecar with the verdict)."""
    verdict = assess(rows, history)
    rows = rows.assign(**{COLUMN: verdict.did_not_learn})
    r = rows.iloc[0]
    job = {
        "dataset": r.dataset,
        "arch": r.arch,
        "protocol": r.protocol,
        "fold": int(r.fold),
        "seed": 0,
        "profile": "quick",
        "train": {"epochs": 3, "image_size": 64, "width": 8, "depth": 5},
        "data_root": "/data/dsb2018",
        "data_options": "{}",
    }
    base = store.job_dir(results, r.dataset, r.arch) / f"holdout_f{r.fold}"
    store.atomic_write_parquet(base.with_suffix(".parquet"), rows)
    side = {
        "key": r.job_key,
        "status": "ok",
        "job": job,
        "history": history,
        "learning": verdict.to_dict(),
        "n_written": len(rows),
    }
    store.atomic_write_json(base.with_suffix(".json"), side)
    return side


@pytest.fixture
def results(tmp_path: Path) -> Path:
    for fold in (0, 1):
        write_job(tmp_path, trivial_job(fold), HISTORY_FLAT)
        write_job(tmp_path, learning_job(fold), HISTORY_IMPROVES)
    return tmp_path


def test_summary_marks_the_rows_of_models_that_did_not_learn(results: Path) -> None:
    df = store.load_all(results)
    table = summary_with_learning(df)
    assert table.set_index("arch")["not_learned"].to_dict() == {"mildnet": 0, "unet": 2}
    text = format_summary(table)
    assert "! 2/2 did not learn" in text.splitlines()[2] and "did not learn" not in text.splitlines()[1]
    lines = not_learned_lines(results, set(df["job_key"]))
    assert "2 of 4 fold models did not learn" in lines[0]
    # grouped: one line per dataset x architecture with the count, the folds and the kinds of reason
    assert [ln.strip() for ln in lines[1:]] == [
        (
            "dsb2018/unet: 2 fold model(s) (holdout fold 0, holdout fold 1): Dice no better than a trivial floor, "
            "selection loss never below epoch 0, trivial predictions"
        )
    ]
    assert "bench report --table learning" in lines[0]


def test_learning_table_lists_every_fold_model_with_its_reasons(results: Path) -> None:
    from bench.analysis.learning import learning_table

    table = learning_table(store.sidecars(results))
    assert len(table) == 4 and list(table["did_not_learn"][:2]) == [True, True]  # flagged first
    assert table.loc[0, "reasons"].startswith("predicted background on every scored image")
    assert table.loc[3, "reasons"] == "" and "2 of 4" in table.attrs["caption"]


def test_summary_says_when_the_flag_was_not_recorded(results: Path) -> None:
    table = summary_with_learning(store.load_all(results).drop(columns=[COLUMN]))
    assert table["not_learned"].isna().all()
    assert "not recorded" in format_summary(table)


def test_table5_caption_and_fig8_title_name_the_models(results: Path) -> None:
    df = store.load_all(results)
    caption = tables.table5(df).attrs["caption"]
    assert "Did not learn" in caption and "2 of 4 fold models: dsb2018/unet folds 0, 1." in caption
    cv = pd.concat(
        [
            job_rows(np.zeros_like(masks(12)), masks(12), "unet", 0, "cv").assign(**{COLUMN: True}),
            job_rows(masks(12), masks(12), "mildnet", 0, "cv").assign(**{COLUMN: False}),
        ]
    )
    title = fig8_figure(cv, metric="dice")._suptitle.get_text()
    assert "Did not learn" in title and "dsb2018/unet fold 0" in title and "mildnet fold" not in title
    assert caption_note(df[df["arch"] == "mildnet"]) == ""


def test_report_lines_count_and_name_the_jobs(results: Path) -> None:
    lines = report_lines(store.sidecars(results))
    assert lines[0].startswith("2 of 4 finished jobs did not learn")
    assert len(lines) == 3 and all("dsb2018/unet/holdout" in ln for ln in lines[1:])
    assert "not recorded for 1 job(s)" in report_lines([*store.sidecars(results), {"status": "ok", "job": {}}])[-1]


def test_run_commands_rebuild_the_sweep(results: Path) -> None:
    """Settings equal to the quick profile's are left out; the one that differs becomes --set."""
    assert run_commands(store.sidecars(results)) == [
        (
            "bench run --dataset dsb2018 --arch mildnet,unet --protocol holdout --folds 0,1 --seeds 0 --profile quick "
            f"--data-root {os.path.relpath('/data')} --set epochs=3"
        )
    ]


@pytest.mark.slow
def test_a_run_stores_the_flag_in_rows_and_sidecar(tmp_path: Path) -> None:
    from bench.config import load_profile
    from bench.run.plan import plan, select
    from bench.run.runner import run_jobs

    prof = load_profile("quick", {"epochs": "2", "image_size": "32", "width": "4", "depth": "3"})
    jobs = plan(select("unet", "dsb2018", False, "holdout", (0,)), prof, tmp_path)
    assert [s.status for s in run_jobs(jobs, tmp_path, progress=False)] == ["ok"]
    side = store.sidecars(tmp_path)[0]
    rows = store.load_all(tmp_path)
    assert set(side["learning"]) == {"did_not_learn", "reasons"}
    assert rows[COLUMN].tolist() == [side["learning"]["did_not_learn"]] * len(rows)
    assert side["learning"] == assess(rows.drop(columns=[COLUMN]), side["history"]).to_dict()


def test_report_index_states_the_flag_and_the_commands(
    results: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bench.commands.report
    from bench.cli import main

    # Tables 1-2 would read the (absent) data
    monkeypatch.setattr(bench.commands.report, "_table_inputs", lambda *a: ())
    out = tmp_path / "report"
    assert main(["report", "--all", "--out", str(out), "--results", str(results)]) == 0
    assert "2 of 4 finished jobs did not learn" in capsys.readouterr().out
    index = (out / "index.md").read_text()
    section = index.split("## Did not learn")[1].split("##")[0]
    assert "2 of 4 finished jobs did not learn" in section and section.count("dsb2018/unet/holdout") == 2
    assert "`bench run --dataset dsb2018 --arch mildnet,unet" in index
    assert f"`bench report --all --out {out} --results {results}`" in index
    assert "Did not learn" in (out / "tables" / "table5.md").read_text()
