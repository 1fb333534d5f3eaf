"""Every artefact of a job is verified: its size and sha256 are recorded in the sidecar when written; a
truncated checkpoint, prediction archive, Parquet file or evaluation record is named with its path by
`bench status`, warned about by every reading command, and recomputed (that job only) by the next run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from tiny_sweep import TINY_SETTINGS, tiny_jobs

from bench.cli import main
from bench.results import store
from bench.results.artefacts import artefact_problems, sha256
from bench.results.store import ResultWarning, stored_state
from bench.run.runner import dry_run_table, paths, run_jobs

SETTINGS = [a for k, v in TINY_SETTINGS.items() for a in ("--set", f"{k}={v}")]
RUN = ["--arch", "unet", "--dataset", "dsb2018", "--folds", "0,1", "--profile", "quick", *SETTINGS, "--quiet"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two finished jobs (U-Net, folds 0 and 1) and a native-resolution evaluation of each."""
    results = tmp_path_factory.mktemp("artefacts")
    list(run_jobs(tiny_jobs(results), results, progress=False))
    assert main(["evaluate", "--from", str(results), "--dataset", "dsb2018", "--resolution", "native"]) == 0
    return results


def copy(finished: Path, tmp_path: Path) -> tuple[Path, list, dict[str, Path]]:
    results = tmp_path / "r"
    shutil.copytree(finished, results)
    jobs = tiny_jobs(results)
    return results, jobs, paths(jobs[0], results)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_sidecar_records_size_and_hash_of_every_artefact(finished: Path) -> None:
    p = paths(tiny_jobs(finished)[0], finished)
    recorded = json.loads(p["sidecar"].read_text())["artefacts"]
    for name in ("checkpoint", "predictions", "parquet"):
        assert recorded[name] == {"file": p[name].name, "size": p[name].stat().st_size, "sha256": sha256(p[name])}
    evaluation = next(p["sidecar"].parent.glob("evaluations/*.json"))
    rows = evaluation.with_suffix(".parquet")
    assert json.loads(evaluation.read_text())["artefacts"]["parquet"]["sha256"] == sha256(rows)


@pytest.mark.parametrize("name", ["checkpoint", "predictions", "parquet"])
def test_truncated_artefact_is_named_and_only_that_job_is_recomputed(
    name: str, finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, jobs, p = copy(finished, tmp_path)
    expected = store.load_all(results).sort_values(["fold", "split", "case_id"]).reset_index(drop=True)
    truncate(p[name])
    state, reason, _ = stored_state(p["sidecar"], jobs[0].key)
    assert state == "damaged" and str(p[name]) in reason
    assert list(dry_run_table(jobs, results)["state"]) == ["damaged", "done"]
    assert main(["status", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "1 damaged" in out and str(p[name]) in out
    # every reading command: one warning line naming the file; the rows are kept unless they are the damage
    assert main(["export", "--results", str(results), "--out", str(tmp_path / "x.csv")]) == 0
    err = capsys.readouterr().err
    assert f"bench: warning: {p[name]} is damaged" in err
    exported = pd.read_csv(tmp_path / "x.csv").query("eval_resolution == 'input'")  # the jobs' own rows
    assert set(exported["fold"]) == ({1} if name == "parquet" else {0, 1})
    # the next run recomputes exactly that job, to the same rows
    with pytest.warns(ResultWarning, match=str(p[name])):
        records = list(run_jobs(jobs, results, progress=False))
    assert [r.status.value for r in records] == ["skipped", "ok"]  # fold 1 skipped, fold 0 recomputed
    assert [stored_state(paths(j, results)["sidecar"], j.key)[0] for j in jobs] == ["done", "done"]
    again = store.load_all(results).sort_values(["fold", "split", "case_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(again[expected.columns], expected)


def test_same_size_other_content_is_damage(finished: Path, tmp_path: Path) -> None:
    _, jobs, p = copy(finished, tmp_path)
    data = bytearray(p["checkpoint"].read_bytes())
    data[len(data) // 2] ^= 0xFF
    p["checkpoint"].write_bytes(bytes(data))
    state, reason, _ = stored_state(p["sidecar"], jobs[0].key)
    assert state == "damaged" and "content differs from the sha256 recorded" in reason


def test_damaged_checkpoint_or_predictions_stop_the_commands_that_load_them(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, _, p = copy(finished, tmp_path)
    truncate(p["checkpoint"])
    images = tmp_path / "images"
    images.mkdir()
    _png(images / "a.png")
    out = ["--out", str(tmp_path / "o")]
    for command in (
        ["predict", "--from", str(results), "--dataset", "dsb2018", "--arch", "unet", "--images", str(images), *out],
        ["saliency", "--results", str(results), "--dataset", "dsb2018", "--arch", "unet", *out],
        ["evaluate", "--from", str(results), "--dataset", "dsb2018", "--resolution", "native"],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith(f"bench {command[0]}: error: {p['checkpoint']} is damaged: ")
        assert err[-1].endswith("`bench run` with the same options recomputes that job") and "Traceback" not in err
    shutil.copy(finished / p["checkpoint"].relative_to(results), p["checkpoint"])
    truncate(p["predictions"])
    assert main(["figure", "--qualitative", "--results", str(results), "--dataset", "dsb2018"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"bench figure: error: {p['predictions']} is damaged") and "Traceback" not in err


def _png(path: Path) -> Path:
    import numpy as np
    from PIL import Image

    Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 255).astype("uint8")).save(path)
    return path


def test_damaged_evaluation_record_is_warned_about_and_recomputed_by_evaluate(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results, _, p = copy(finished, tmp_path)
    record = next(p["sidecar"].parent.glob("evaluations/*.json"))
    n_all = len(store.load_all(results))
    truncate(record)
    assert main(["status", "--results", str(results)]) == 0
    assert f"{record} is unreadable" in capsys.readouterr().out
    with pytest.warns(ResultWarning, match=str(record)):
        fewer = store.load_all(results)
    assert len(fewer) < n_all  # the evaluation's rows are left out, with a warning, never silently
    assert main(["evaluate", "--from", str(results), "--dataset", "dsb2018", "--resolution", "native"]) == 0
    out = capsys.readouterr()
    assert f"bench: warning: {record} is unreadable: recomputing it" in out.err
    assert out.out.count("skipped") == 1 and out.out.count(" ok ") == 1  # only the damaged one is recomputed
    assert len(store.load_all(results)) == n_all


def test_old_sidecar_without_hashes_is_checked_as_far_as_the_files_allow(finished: Path, tmp_path: Path) -> None:
    _, jobs, p = copy(finished, tmp_path)
    side = json.loads(p["sidecar"].read_text())
    del side["artefacts"]
    p["sidecar"].write_text(json.dumps(side))
    assert stored_state(p["sidecar"], jobs[0].key)[0] == "done"  # no hash recorded: not damage
    assert artefact_problems(p["sidecar"], side) == []
    truncate(p["predictions"])  # but an archive that cannot be read is
    state, reason, _ = stored_state(p["sidecar"], jobs[0].key)
    assert state == "damaged" and f"{p['predictions']} is damaged: not a readable archive" in reason


class _Runs:
    """A pickled object whose loading would run ``os.system``: what an unsafe checkpoint holds."""

    def __reduce__(self) -> tuple:
        import os

        return (os.system, ("echo this must never run",))


def test_a_checkpoint_holding_a_pickled_object_is_refused_in_one_line(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    results, _, p = copy(finished, tmp_path)
    side = json.loads(p["sidecar"].read_text())
    del side["artefacts"]  # an older sidecar: nothing to compare the file with, so it is loaded (safely)
    p["sidecar"].write_text(json.dumps(side))
    torch.save({"meta": _Runs(), "state_dict": {}}, p["checkpoint"])
    images = tmp_path / "images"
    images.mkdir()
    _png(images / "a.png")
    command = ["predict", "--from", str(results), "--dataset", "dsb2018", "--arch", "unet", "--folds", "0"]
    assert main([*command, "--images", str(images), "--out", str(tmp_path / "o")]) == 2
    out = capsys.readouterr()
    assert "this must never run" not in out.out
    said = f"{p['checkpoint']}: refused, not a bench checkpoint: it holds a pickled posix.system object"
    assert out.err.strip().splitlines() == [f"bench predict: error: {said}, which loading would run"]
