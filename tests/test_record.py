"""The job record, the atomic writer and the git-sha helper: one of each, compatible with what is stored."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from bench.atomic import TMP_PREFIX, atomic_write, atomic_write_json
from bench.results.provenance import environment, git_sha
from bench.results.record import CRASHED, JobRecord, Status

REPO = Path(__file__).resolve().parents[1]
JOB = {
    "dataset": "dsb2018",
    "arch": "unet",
    "protocol": "holdout",
    "fold": 1,
    "seed": 0,
    "profile": "quick",
    "train": {"epochs": 2},
    "key": "0123456789abcdef",
}

# sidecars exactly as earlier versions wrote them (running, ok, failed, crashed, ok after a failed --force)
LEGACY = {
    "running": {"job": JOB, "key": "0123456789abcdef", "status": "running", "started": 1.5, "pid": 42, "host": "h"},
    "ok": {
        "job": JOB,
        "key": "0123456789abcdef",
        "status": "ok",
        "seconds": 3.25,
        "n_written": 12,
        "best_epoch": 1,
        "best_select_loss": 0.5,
        "history": [{"train_loss": 1.0, "select_loss": 0.5}],
        "device": "cpu",
        "started": 1.5,
        "environment": {"git_sha": "", "threads": 1},
        "compute": {"gmacs": 0.1},
    },
    "failed": {
        "job": JOB,
        "key": "0123456789abcdef",
        "status": "failed",
        "error": "RuntimeError: boom",
        "traceback": "Traceback (most recent call last):\n...",
        "seconds": 0.5,
        "environment": {"threads": 1},
    },
    "crashed": {"job": JOB, "key": "0123456789abcdef", "status": "failed", "error": CRASHED, "crashed_pid": 7},
    "kept": {
        "job": JOB,
        "key": "0123456789abcdef",
        "status": "ok",
        "seconds": 3.0,
        "n_written": 12,
        "last_failure": {"error": "ValueError: late", "traceback": "...", "seconds": 1.0, "at": 9.0},
    },
}


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_stored_sidecars_read_back_and_write_out_unchanged(name: str) -> None:
    record = JobRecord.from_json(json.loads(json.dumps(LEGACY[name])))
    assert record.to_json() == LEGACY[name]
    assert record.label == "dsb2018/unet/holdout/fold1/seed0" and record.key == JOB["key"]
    assert record.crashed == (name == "crashed")
    assert (record.status is Status.FAILED) == (name in ("failed", "crashed"))


def test_record_fields_and_details() -> None:
    ok = JobRecord.from_json(LEGACY["ok"])
    assert ok.status == "ok" and ok.seconds == 3.25 and ok.n_written == 12 and ok.started == 1.5
    assert ok.details["best_epoch"] == 1 and "history" in ok.details and "status" not in ok.details
    failed = JobRecord.from_json(LEGACY["failed"])
    assert failed.error.startswith("RuntimeError") and failed.traceback.startswith("Traceback")
    with pytest.raises(ValueError, match="record's own keys: status"):
        JobRecord(job=JOB, key="k", status=Status.OK, details={"status": "x"})


def test_in_memory_fields_never_reach_the_sidecar() -> None:
    submitted = JobRecord(job=JOB, key="k", status=Status.SUBMITTED, task="12_3", note="queued")
    assert submitted.to_json() == {"job": JOB, "key": "k", "status": "submitted"}
    assert JobRecord.from_json({**LEGACY["ok"], "_path": "/x/y.json"}).details.get("_path") is None


@pytest.mark.parametrize("bad", [{"status": "ok"}, {"job": JOB, "key": "k", "status": "exploded"}, {"job": 1}])
def test_a_non_sidecar_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError, match="sidecar|status"):
        JobRecord.from_json(bad)


def test_the_committed_baseline_sidecars_still_load() -> None:
    for side in json.loads((REPO / "results" / "baseline" / "sidecars.json").read_text()):
        record = JobRecord.from_json(side)
        assert record.status is Status.OK and record.to_json() == side


def test_atomic_write_leaves_the_old_file_and_no_temporary_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"x": 1})

    def half(fh) -> None:
        fh.write(b'{"x": ')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half)
    assert json.loads(target.read_text()) == {"x": 1}
    assert not list(target.parent.glob(f"{TMP_PREFIX}*"))


def test_one_atomic_writer_and_one_git_helper_in_the_code() -> None:
    """Only bench/atomic.py renames temporary files into place, only bench/results/provenance.py asks git."""
    sources = [p for d in ("bench", "datasets", "architectures") for p in (REPO / d).rglob("*.py")]
    replacing = sorted(str(p.relative_to(REPO)) for p in sources if re.search(r"os\.(replace|rename)\(", p.read_text()))
    asking_git = sorted(str(p.relative_to(REPO)) for p in sources if "rev-parse" in p.read_text())
    assert replacing == ["bench/atomic.py"] and asking_git == ["bench/results/provenance.py"]


def test_git_sha_inside_and_outside_a_checkout(tmp_path: Path) -> None:
    inside = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False)
    if inside.returncode == 0:
        assert git_sha() == inside.stdout.strip() and re.fullmatch(r"[0-9a-f]{40}", git_sha())
    assert git_sha(tmp_path) == ""
    env = environment()
    assert env["git_sha"] == git_sha() and env["threads"] >= 1 and "torch" in env["versions"]
