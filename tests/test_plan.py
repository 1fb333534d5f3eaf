"""Planning reports every problem of a selection at once, each naming its dataset and the way forward."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from native_layouts import make_dsb, make_isic, make_lgg, truncate

from bench.cli import main
from bench.config import load_profile
from bench.run.plan import PlanError, plan, select

REAL = Path(os.environ.get("BENCH_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TINY = {"image_size": "32", "width": "4", "depth": "3", "epochs": "1"}


def profile(**overrides: str):
    return load_profile("quick", {**TINY, **overrides})


def problem_lines(err: PlanError) -> dict[str, str]:
    return {p.dataset: str(p) for p in err.problems}


def test_every_problem_of_an_all_run_in_one_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_lgg(data / "lgg_mri")  # 2 patients: holdout puts one in the test set, leaving 1 for the folds
    make_dsb(data / "dsb2018")  # 3 images: holdout leaves 2 outside the test set
    with pytest.raises(PlanError) as info:
        plan(select(None, None, True, "holdout"), profile(), tmp_path / "results", data)
    lines = problem_lines(info.value)
    assert set(lines) == {"isbi2012", "isic2018", "glas2015", "lgg_mri", "dsb2018"}
    assert "2 patient(s)" in lines["lgg_mri"] and "leave it out of --dataset" in lines["lgg_mri"]
    assert "Way forward: --set lgg_mri.n_folds=" not in lines["lgg_mri"]  # no holdout fold count works
    assert "this data has 2" in lines["dsb2018"] and "--set dsb2018.n_folds=2 " in lines["dsb2018"]
    assert "--protocol cv --set dsb2018.n_folds=3" in lines["dsb2018"]
    for missing in ("isbi2012", "isic2018", "glas2015"):
        assert f"no folder {data / missing}" in lines[missing]
    text = str(info.value)
    assert "present lgg_mri, dsb2018; missing isbi2012, isic2018, glas2015" in text
    assert text.count("\n  - ") == 5  # one line per problem
    assert not (tmp_path / "results" / "runs").exists()  # nothing started


def test_the_suggested_fix_plans(tmp_path: Path) -> None:
    data = tmp_path / "data"
    make_dsb(data / "dsb2018")
    sel = select("unet", "dsb2018", False, "holdout")
    with pytest.raises(PlanError, match="--set dsb2018.n_folds=2"):
        plan(sel, profile(), tmp_path / "a", data)
    jobs = plan(sel, profile(**{"dsb2018.n_folds": "2"}), tmp_path / "b", data)
    assert [(j.dataset, j.fold, j.train.n_folds) for j in jobs] == [("dsb2018", 0, 2), ("dsb2018", 1, 2)]


def test_fold_indices_beyond_the_split_are_named_per_dataset(tmp_path: Path) -> None:
    sel = select("unet", "isic2018,dsb2018", False, "holdout", folds=(0, 6))
    with pytest.raises(PlanError) as info:
        plan(sel, profile(synthetic_n="10"), tmp_path)
    lines = problem_lines(info.value)
    assert set(lines) == {"isic2018", "dsb2018"}
    assert all("fold(s) 6 do not exist" in v and "--folds 0" in v for v in lines.values())


def test_bad_files_and_too_few_groups_are_reported_together(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad = truncate(make_dsb(data / "dsb2018").image("3d4e5f"))
    make_lgg(data / "lgg_mri")
    with pytest.raises(PlanError) as info:
        plan(select("unet", "dsb2018,lgg_mri", False, "holdout"), profile(), tmp_path / "results", data)
    lines = problem_lines(info.value)
    assert str(bad) in lines["dsb2018"] and "--skip 3d4e5f" in lines["dsb2018"]
    assert "patient(s)" in lines["lgg_mri"]
    assert "No selected dataset can be planned" in str(info.value)


def test_run_prints_the_problems_and_starts_nothing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    make_dsb(data / "dsb2018")
    args = [
        "run",
        "--arch",
        "unet",
        "--dataset",
        "dsb2018",
        "--data-root",
        str(data),
        "--results",
        str(tmp_path / "r"),
        *[f"--set={k}={v}" for k, v in TINY.items()],
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "dsb2018: 3 images, each its own group" in err and "--set dsb2018.n_folds=2" in err
    assert not (tmp_path / "r" / "runs").exists()


@pytest.mark.real_data
@pytest.mark.skipif(not REAL.is_dir(), reason=f"real data samples not found at {REAL}")
def test_real_samples_name_lgg_and_glas_with_their_fix(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--all", "--data-root", str(REAL), "--dry-run", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("  - ")]
    assert [ln.split(":")[0] for ln in lines] == ["  - lgg_mri", "  - glas2015"]
    assert "3 patient(s)" in lines[0] and "--set lgg_mri.n_folds=2" in lines[0]
    assert "--protocol cv --set lgg_mri.n_folds=3" in lines[0]
    assert "leave it out of --dataset" in lines[1]
    assert "Plan without them: --dataset isbi2012,isic2018,dsb2018" in err


def test_one_skip_list_serves_several_datasets(tmp_path: Path) -> None:
    data = tmp_path / "data"
    ids = tuple(f"ISIC_000000{i}" for i in range(1, 7))
    bad = truncate(make_isic(data / "isic2018", ids).image(ids[2]))
    make_dsb(data / "dsb2018")
    sel = select("unet", "isic2018,dsb2018", False, "holdout")
    with pytest.raises(PlanError) as info:
        plan(sel, profile(n_folds="2"), tmp_path / "r", data)
    assert str(bad) in problem_lines(info.value)["isic2018"] and f"--skip {ids[2]}" in str(info.value)
    with pytest.raises(PlanError) as info:
        plan(sel, profile(n_folds="2"), tmp_path / "r", data, skip=(ids[2], "ISIC_9999999"))
    assert problem_lines(info.value) == {
        "--skip": "--skip: no selected dataset present holds case id(s) "
        "ISIC_9999999. Way forward: check the ids against `bench data check`, "
        "or drop them from --skip"
    }
    jobs = plan(sel, profile(n_folds="2"), tmp_path / "r", data, skip=(ids[2],))
    options = {j.dataset: json.loads(j.data_options) for j in jobs}
    assert options["isic2018"]["skip"] == [ids[2]] and "skip" not in options["dsb2018"]


# ---------------------------------------------------------------------------------- the plan's cost


def _run_args(results: Path, *extra: str) -> list[str]:
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    return [
        "run",
        "--arch",
        "unet,mildnet",
        "--dataset",
        "dsb2018",
        "--folds",
        "0",
        *sets,
        "--results",
        str(results),
        *extra,
    ]


def test_the_plan_states_its_cost_from_steps_timed_once_per_machine(tmp_path: Path, capsys) -> None:
    import re
    import socket

    assert main(_run_args(tmp_path, "--dry-run")) == 0
    out = capsys.readouterr().out
    assert "timing one training step of 2 network setting(s) here" in out
    head = re.search(
        r"estimate on cpu \(2 jobs to run, (\d) worker\(s\)\): (.+) wall, peak memory per worker ([\d,]+) MiB", out
    )
    assert head, out
    assert re.search(r"^  mildnet +1 jobs +[\d.]+ s summed  peak [\d,]+ MiB in a fresh worker$", out, re.MULTILINE), out
    assert "note: the paper profile" not in out and "over a day" not in out
    cache = json.loads((tmp_path / "estimates" / f"{socket.gethostname()}.json").read_text())
    assert sorted(v["settings"]["arch"] for v in cache.values()) == ["mildnet", "unet"]
    assert all(
        v["train_s"] > 0 and v["eval_s"] > 0 and v["peak_mb"] > 100 and v["device"] == "cpu" for v in cache.values()
    )
    assert all(v["fixed_s"] > 0 and v["score_s"] > 0 for v in cache.values())  # once per job, per scored image
    assert {v["machine"]["torch"] for v in cache.values()} and all(
        v["settings"]["in_channels"] == 3 for v in cache.values()
    )

    assert main(_run_args(tmp_path, "--dry-run")) == 0  # the same plan again: read from the cache
    out = capsys.readouterr().out
    assert "timing one training step" not in out and "estimate on cpu (2 jobs to run" in out
    assert main(_run_args(tmp_path, "--dry-run", "--set", "batch_size=2")) == 0  # a setting of the step changed
    assert "timing one training step of 2 network setting(s)" in capsys.readouterr().out


def test_a_job_records_the_estimate_and_its_error_shown_by_the_compute_table(tmp_path: Path, capsys) -> None:
    from bench.results.store import sidecars

    assert main(_run_args(tmp_path, "--jobs", "0", "--quiet")) == 0  # 0: the jobs run in this process
    ok = [s for s in sidecars(tmp_path) if s["status"] == "ok"]
    assert len(ok) == 2
    for side in ok:
        compute = side["compute"]
        measured = side["train_seconds"]
        assert compute["estimated_train_seconds"] > 0
        assert compute["estimate_error"] == pytest.approx(compute["estimated_train_seconds"] / measured - 1)
        # the recorded peak is the whole process's (it ran in this process, after the cache build)
        assert compute["memory_kind"] == "rss_process" and compute["peak_memory_mb"] >= compute["job_peak_memory_mb"]
    capsys.readouterr()
    assert main(["report", "--table", "compute", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "estimate error" in out.lower().replace("_", " ") and "estimated / measured - 1" in out


def test_a_jobs_estimate_adds_its_once_only_work_and_scoring_to_the_epochs(tmp_path: Path) -> None:
    from bench.run.estimate import StepCost, job_estimate

    job = plan(select("unet", "dsb2018", False, "holdout", (0,)), profile(), tmp_path)[0]
    cost = StepCost(0.5, 0.1, 800.0, "rss", "cpu", "cpu", fixed_s=2.0, score_s=0.01)
    n = {"train": 10, "select": 3, "scored": 4, "scored_images": 15}
    estimate = job_estimate(job, cost, n)
    assert estimate.train_s == pytest.approx(job.train.epochs * (10 * 0.5 + 3 * 0.1))
    assert estimate.total_s == pytest.approx(estimate.train_s + 4 * 0.1 + 15 * 0.01 + 2.0)


def test_the_cost_says_when_it_is_over_a_day_and_that_the_paper_profile_wants_a_gpu(tmp_path: Path) -> None:
    from bench.run.estimate import DAY_S, JobEstimate, PlanCost

    jobs = plan(select("unet,mildnet", "dsb2018", False, "holdout", (0,)), profile(), tmp_path)
    cost = PlanCost(tuple(JobEstimate(j, DAY_S, DAY_S * 1.01, 2000.0, "cpu") for j in jobs))
    lines = cost.lines(1, "paper")
    assert lines[0].startswith("estimate on cpu (2 jobs to run, 1 worker(s)): 2.0 days wall")
    assert any(ln.startswith("note: the estimate is over a day (2.0 days) on cpu") for ln in lines)
    assert any("the paper profile is meant for a GPU" in ln for ln in lines)
    short = PlanCost(tuple(JobEstimate(j, 60.0, 61.0, 500.0, "cpu") for j in jobs)).lines(2, "quick")
    assert short[0].startswith("estimate on cpu (2 jobs to run, 2 worker(s)): 61 s wall") and len(short) == 3
    assert "GPU" not in " ".join(PlanCost(tuple(JobEstimate(j, 1, 1, 1, "cuda") for j in jobs)).lines(1, "paper"))


def test_jobs_by_memory(tmp_path: Path, capsys) -> None:
    from bench.run.estimate import workers_that_fit

    assert workers_that_fit(1000.0, 8, 4000.0) == 3  # 80% of 4,000 MiB holds three 1,000 MiB workers
    assert workers_that_fit(1000.0, 2, 64000.0) == 2  # never more than the cores
    assert workers_that_fit(9000.0, 8, 4000.0) == 1  # at least one
    assert workers_that_fit(1000.0, 8, None) == 8  # memory unknown: the cores
    assert main(_run_args(tmp_path, "--dry-run", "--jobs", "100000")) == 0
    err = capsys.readouterr().err
    assert err.startswith("bench: warning: --jobs 100000 x ") and "MiB estimated peak per worker" in err
    assert "MiB available; --jobs " in err and err.count("\n") == 1


def test_a_network_whose_step_fails_is_not_estimated_and_the_plan_goes_on(tmp_path: Path, capsys) -> None:
    """The timed step runs in a worker forked from the pool's server, which knows only the package's
    networks: one registered on the fly here cannot take it there. The plan says so and goes on."""
    from torch import nn

    from bench.architectures import ARCHITECTURES

    ARCHITECTURES.register("only_here", lambda **kw: nn.Conv2d(kw["in_channels"], 1, 1))
    try:
        args = _run_args(tmp_path, "--dry-run")
        args[args.index("unet,mildnet")] = "unet,only_here"
        assert main(args) == 0
    finally:
        ARCHITECTURES.unregister("only_here")
    out = capsys.readouterr().out
    assert "estimate on cpu (1 jobs to run" in out
    assert "estimate: 1 job(s) not estimated, their step failed (only_here: UnknownName: unknown architecture" in out
