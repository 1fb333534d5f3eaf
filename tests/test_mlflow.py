"""A results folder in MLflow (``bench export --to mlflow``, ``bench run --track mlflow``), read back from a real
``mlflow server`` (SQLite backend store, artefacts in a temporary folder) on the loopback address.

One server and one tracked two-architecture sweep serve the whole module: the server takes tens of seconds
to start (it creates its database), the sweep trains four tiny fold models on two worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from tiny_sweep import TINY_SETTINGS, tiny_jobs

from bench.cli import main
from bench.results import store
from bench.results.record import Status
from bench.results.selection import settings_table

mlflow = pytest.importorskip("mlflow", reason="needs the tracking extra (pip install -e .[tracking])")
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

SWEEP = ["--arch", "unet,residual_unet", "--dataset", "dsb2018", "--folds", "0,1", "--quiet"]
SWEEP += [a for k, v in {**TINY_SETTINGS, "epochs": "2"}.items() for a in ("--set", f"{k}={v}")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(uri: str) -> bool:
    try:
        with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The URI of a real MLflow tracking server, started once for the module."""
    root = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'db.sqlite'}"]
    cmd += ["--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1"]
    log = open(root / "server.log", "w")  # noqa: SIM115 (open for the server's whole life)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no background job runners: starts faster
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while not answers(uri):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"mlflow server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.5)
    yield uri
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def sweep(server: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-architecture sweep run with ``--track mlflow`` (experiment ``tracked``) on two worker processes."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    argv = ["run", *SWEEP, "--results", str(results), "--jobs", "2"]
    assert main([*argv, "--track", "mlflow", "--tracking-uri", server, "--experiment", "tracked"]) == 0
    return results


def export(results: Path, server: str, experiment: str, *extra: str) -> int:
    return main(
        [
            "export",
            "--to",
            "mlflow",
            "--results",
            str(results),
            "--tracking-uri",
            server,
            "--experiment",
            experiment,
            *extra,
        ]
    )


def runs_by_key(server: str, experiment: str) -> dict[str, Any]:
    """{job key, or ``config:<key>`` for a configuration's run: run} of the experiment's active runs."""
    client = MlflowClient(server)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    out = {}
    for run in client.search_runs([found.experiment_id], max_results=1000):
        tags = run.data.tags
        key = tags.get("bench.job_key") or f"config:{tags['bench.config_key']}"
        assert key not in out, f"two runs for {key}"
        out[key] = run
    return out


def sidecar_settings(results: Path) -> dict[str, dict[str, str]]:
    """{job key: every recorded setting as text} from the sidecars, as ``bench report --table settings`` reads them."""
    table = settings_table(store.sidecars(results)).drop(columns="status")
    return {
        row["job_key"]: {k: str(v) for k, v in row.items() if pd.notna(v) or v is None} for _, row in table.iterrows()
    }


# ---------------------------------------------------------------------------------------------- export


def test_export_logs_one_run_per_job_under_its_configuration(sweep: Path, server: str) -> None:
    assert export(sweep, server, "exported") == 0
    runs = runs_by_key(server, "exported")
    sides = {s["key"]: s for s in store.sidecars(sweep)}
    assert len(sides) == 4
    parents = [r for k, r in runs.items() if k.startswith("config:")]
    assert len(parents) == 1 and set(runs) == {*sides, next(k for k in runs if k.startswith("config:"))}
    parent = parents[0]
    settings = sidecar_settings(sweep)
    client = MlflowClient(server)
    rows = store.load_all(sweep)
    for key, side in sides.items():
        run = runs[key]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        params = run.data.params
        assert {k: params[k] for k in settings[key]} == settings[key]
        assert params["git_sha"] == side["environment"]["git_sha"]
        assert params["bench_version"] == side["environment"]["versions"]["bench"]
        history = client.get_metric_history(run.info.run_id, "loss/train")
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [
            (h["epoch"], pytest.approx(h["train_loss"])) for h in side["history"]
        ]
        assert len(history) == side["job"]["train"]["epochs"] == 2
        assert len(client.get_metric_history(run.info.run_id, "loss/select")) == 2
        assert run.data.metrics["best_epoch"] == side["best_epoch"]
        mine = rows[rows["job_key"] == key]
        assert run.data.metrics["test_dice"] == pytest.approx(mine[mine["split"] == "test"]["dice"].mean())
        assert run.data.metrics["compute/gmacs"] == pytest.approx(side["compute"]["gmacs"])
        assert run.data.tags["bench.did_not_learn"] == str(side["learning"]["did_not_learn"]).lower()
        assert run.data.tags.get("bench.did_not_learn.reasons", "") == "; ".join(side["learning"]["reasons"])
        assert run.data.tags["bench.engine"] == side["where"]["engine"] == "local"
        assert run.data.tags["bench.host"] == side["where"]["host"]
        per_image = pd.read_csv(
            mlflow.artifacts.download_artifacts(
                run_id=run.info.run_id, artifact_path="per_image.csv", tracking_uri=server
            )
        )
        assert len(per_image) == side["n_written"] and set(per_image["job_key"]) == {key}
    for arch in ("unet", "residual_unet"):
        mine = rows[(rows["arch"] == arch) & (rows["split"] == "test")]
        assert parent.data.metrics[f"test_dice/{arch}"] == pytest.approx(mine["dice"].mean())
        assert parent.data.metrics[f"jobs_finished/{arch}"] == 2


def test_exporting_twice_changes_nothing(sweep: Path, server: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert export(sweep, server, "twice") == 0
    first = runs_by_key(server, "twice")
    capsys.readouterr()
    assert export(sweep, server, "twice") == 0
    assert "runs 5 unchanged" in capsys.readouterr().out
    second = runs_by_key(server, "twice")
    assert {k: r.info.run_id for k, r in first.items()} == {k: r.info.run_id for k, r in second.items()}
    client = MlflowClient(server)
    for key, run in second.items():
        if not key.startswith("config:"):
            assert len(client.get_metric_history(run.info.run_id, "loss/train")) == 2


def test_a_tracked_sweep_gives_the_same_runs_as_the_export(sweep: Path, server: str) -> None:
    if not runs_by_key(server, "exported"):
        assert export(sweep, server, "exported") == 0
    tracked, exported = runs_by_key(server, "tracked"), runs_by_key(server, "exported")
    assert set(tracked) == set(exported) and len(tracked) == 5
    for key, run in tracked.items():
        other = exported[key]
        assert run.data.params == other.data.params, key
        assert run.data.metrics == other.data.metrics, key
        mine = {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")}
        theirs = {k: v for k, v in other.data.tags.items() if not k.startswith("mlflow.")}
        assert mine == theirs, key
        assert run.info.status == other.info.status and run.info.run_name == other.info.run_name


def test_where_selects_the_jobs(sweep: Path, server: str) -> None:
    assert export(sweep, server, "only-unet", "--where", "arch=unet") == 0
    runs = runs_by_key(server, "only-unet")
    jobs = [r for k, r in runs.items() if not k.startswith("config:")]
    assert len(jobs) == 2 and {r.data.params["arch"] for r in jobs} == {"unet"}


def test_a_failed_job_is_a_failed_run_with_its_error_line(sweep: Path, server: str, tmp_path: Path) -> None:
    from bench.run.job import run_job

    results = tmp_path / "results"
    shutil.copytree(sweep, results)
    job = dataclasses.replace(tiny_jobs(results, folds=(0,))[0], arch_kwargs=json.dumps({"width": 3}))
    record = run_job(job, results)
    assert record.status is Status.FAILED
    assert export(results, server, "with-failure") == 0
    run = runs_by_key(server, "with-failure")[job.key]
    assert run.info.status == "FAILED"
    assert run.data.tags["bench.status"] == "failed"
    assert run.data.tags["bench.error"] == record.error.splitlines()[0]
    assert "arch_kwargs may not set width" in run.data.tags["bench.error"]


def test_the_report_folder_goes_on_the_configuration_run(sweep: Path, server: str, tmp_path: Path) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "index.html").write_text("<html>report</html>")
    (report / "figures").mkdir()
    (report / "figures" / "fig8.png").write_bytes(b"\x89PNG")
    assert export(sweep, server, "with-report", "--report", str(report)) == 0
    parent = next(r for k, r in runs_by_key(server, "with-report").items() if k.startswith("config:"))
    client = MlflowClient(server)
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} == {
        "report/figures",
        "report/index.html",
    }


def test_a_report_belongs_to_one_configuration(sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.run.job import run_job

    results = tmp_path / "results"
    shutil.copytree(sweep, results)
    other = tiny_jobs(results, folds=(0,))[0]
    other = dataclasses.replace(other, train=dataclasses.replace(other.train, epochs=1))
    assert run_job(other, results).status is Status.OK
    (tmp_path / "report").mkdir()
    assert export(results, "http://127.0.0.1:9", "never", "--report", str(tmp_path / "report")) == 2
    assert "form 2 configurations and a report belongs to one" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- --track


def test_an_unreachable_server_is_one_warning_and_the_sweep_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results"
    argv = ["run", "--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--quiet", "--results", str(results)]
    argv += [a for k, v in TINY_SETTINGS.items() for a in ("--set", f"{k}={v}")]
    dead = f"http://127.0.0.1:{free_port()}"
    assert main([*argv, "--jobs", "1", "--track", "mlflow", "--tracking-uri", dead]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("bench: warning:")]
    assert len(warnings) == 1 and dead in warnings[0] and "bench export --to mlflow" in warnings[0], err
    assert len(store.load_all(results)) > 0


def test_a_server_gone_when_jobs_end_is_one_warning_per_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The hook a worker calls as each job ends (the server answered when the sweep started, now it does not):
    one warning line in that process, however many jobs it runs, and every job's result is stored."""
    from bench.run.job import run_job
    from bench.tracking import export as tracking_export
    from bench.tracking.target import Tracking

    results = tmp_path / "results"
    dead = Tracking(uri=f"http://127.0.0.1:{free_port()}", experiment="gone", engine="local")
    tracking_export._warned = False
    try:
        for job in tiny_jobs(results):
            assert run_job(job, results, track=dead).status is Status.OK
    finally:
        tracking_export._warned = False
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("bench: warning:")]
    assert len(warnings) == 1 and "cannot be reached" in warnings[0]
    assert len(store.sidecars(results)) == 2


def test_a_profile_tracking_section_tracks_the_sweep(server: str, tmp_path: Path) -> None:
    profile = tmp_path / "tracked.yaml"
    settings = "\n".join(f"{k}: {v}" for k, v in TINY_SETTINGS.items())
    profile.write_text(f"{settings}\ntracking:\n  to: mlflow\n  uri: {server}\n  experiment: from-profile\n")
    results = tmp_path / "results"
    argv = ["run", "--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--quiet", "--jobs", "1"]
    assert main([*argv, "--profile", str(profile), "--results", str(results)]) == 0
    runs = runs_by_key(server, "from-profile")
    (side,) = store.sidecars(results)
    assert set(runs) == {side["key"], f"config:{runs[side['key']].data.tags['bench.config_key']}"}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("tracking:\n  to: wandb\n", "tracking: to must be mlflow, got 'wandb'"),
        ("tracking:\n  url: http://x\n", "tracking: unknown key(s) url; known: to, uri, experiment"),
        ("tracking: mlflow\n", "tracking must be a mapping"),
    ],
)
def test_a_wrong_tracking_section_is_one_error_line(
    section: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = tmp_path / "wrong.yaml"
    profile.write_text(f"epochs: 1\n{section}")
    argv = ["run", "--arch", "unet", "--dataset", "dsb2018", "--dry-run", "--profile", str(profile)]
    assert main([*argv, "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench run: error: profile {profile}: ") and message in err, err


def test_without_a_server_address_the_export_says_how_to_give_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["export", "--to", "mlflow", "--results", str(tmp_path)]) == 2
    assert "give --tracking-uri URI" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- no mlflow


@pytest.mark.parametrize(
    "argv",
    [
        ["export", "--to", "mlflow", "--tracking-uri", "http://127.0.0.1:9"],
        [
            "run",
            "--arch",
            "unet",
            "--dataset",
            "dsb2018",
            "--folds",
            "0",
            "--track",
            "mlflow",
            "--tracking-uri",
            "http://127.0.0.1:9",
        ],
    ],
)
def test_without_mlflow_the_commands_say_how_to_install_it(argv: list[str], tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['mlflow'] = None\n"  # what an environment without the extra sees: ImportError
        "from bench.cli import main\n"
        f"sys.exit(main({[*argv, '--results', str(tmp_path / 'results')]!r}))\n"
    )
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "needs MLflow, which is not installed: pip install -e .[tracking]" in done.stderr


def test_a_dask_worker_logs_the_jobs_it_ran(server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under --engine dask the worker that ran a job logs it (its run's tags name the Dask worker); the driver
    (this process, where logging is made to fail) logs nothing."""
    from bench.tracking import export as tracking_export

    def not_here(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the driver logged a job that a Dask worker ran")

    monkeypatch.setattr(tracking_export, "track_job", not_here)
    results = tmp_path / "results"
    argv = ["run", "--arch", "unet", "--dataset", "dsb2018", "--folds", "0", "--quiet", "--engine", "dask"]
    argv += [a for k, v in TINY_SETTINGS.items() for a in ("--set", f"{k}={v}")]
    assert (
        main(
            [
                *argv,
                "--jobs",
                "1",
                "--results",
                str(results),
                "--track",
                "mlflow",
                "--tracking-uri",
                server,
                "--experiment",
                "on-dask",
            ]
        )
        == 0
    )
    (side,) = store.sidecars(results)
    assert side["where"]["engine"] == "dask" and side["where"]["dask_worker"]
    runs = runs_by_key(server, "on-dask")
    tags = runs[side["key"]].data.tags
    assert tags.get("bench.dask_worker") == side["where"]["dask_worker"], tags
