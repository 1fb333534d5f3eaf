"""Precision, layout and compilation are recorded settings: part of the job key, shown in the report's
provenance, refused when mixed in a comparison; and the cheap deterministic switch gives identical weights."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from results_fixture import every_comparison, make_results, make_sidecars

from bench.architectures import create_model
from bench.config import Job, TrainConfig, coerce
from bench.report import report
from bench.results import selection
from bench.run.train import deterministic, fit

MIXED = {"amp": ("auto", "bf16"), "channels_last": ("auto", "on"), "compile": (False, True)}


@pytest.mark.parametrize("key", sorted(MIXED))
def test_a_sweep_mixing_numerics_is_refused_by_every_comparison(key: str) -> None:
    base_value, other_value = MIXED[key]
    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=20)
    unet = df["arch"] == "unet"
    sides = make_sidecars(df[~unet], **{key: base_value}) + make_sidecars(df[unet], **{key: other_value})
    full = selection.attach(df, selection.settings_table(sides))
    pattern = (
        rf"differ in more than the architecture: lgg_mri: {key} \(mildnet: {base_value}; unet: {other_value}\)"
        r".*--where"
    )
    comparisons = every_comparison(full)
    for name, make in comparisons.items():
        with pytest.raises(ValueError, match=pattern):
            make()
            pytest.fail(f"{name} did not refuse")
    # one configuration chosen with --where compares again
    chosen, *_ = selection.apply_selection(df, None, sides, {"arch": "unet"})
    assert set(chosen["arch"]) == {"unet"}


def test_auto_numerics_that_resolved_differently_are_refused_by_every_comparison() -> None:
    """``device: auto`` with ``amp: auto`` is bf16 autocast on a GPU and plain fp32 on a CPU node: the same
    settings and job key, different arithmetic. What each job ran with (its sidecar's ``compute``) is
    compared too."""
    df = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=20)
    sides = make_sidecars(df)
    for s in sides:
        ran = "bf16" if s["job"]["arch"] == "unet" else "fp32"
        s["compute"] = {"device": "cpu", "precision": ran, "grad_scaler": False, "channels_last": True}
    full = selection.attach(df, selection.settings_table(sides))
    pattern = r"differ in more than the architecture: lgg_mri: autocast_used \(mildnet: fp32; unet: bf16\).*--where"
    for name, make in every_comparison(full).items():
        with pytest.raises(ValueError, match=pattern):
            make()
            pytest.fail(f"{name} did not refuse")
    chosen, *_ = selection.apply_selection(df, None, sides, {"autocast_used": "bf16"})
    assert set(chosen["arch"]) == {"unet"}
    # a job that recorded nothing (a sidecar older than the record) is not a difference
    for s in sides:
        if s["job"]["arch"] == "unet":
            del s["compute"]
    full = selection.attach(df, selection.settings_table(sides))
    for make in every_comparison(full).values():
        make()


def test_numerics_are_part_of_the_job_key_and_shown_in_provenance() -> None:
    job = Job("dsb2018", "unet", "holdout", 0, 0, "quick", TrainConfig())
    keys = {job.key} | {
        Job("dsb2018", "unet", "holdout", 0, 0, "quick", TrainConfig(**{k: v[1]})).key for k, v in MIXED.items()
    }
    assert len(keys) == 1 + len(MIXED)
    assert coerce("compile", "true") is True and coerce("amp", "bf16") == "bf16"
    df = make_results(datasets=("lgg_mri",), archs=("unet",), n_cases=4)
    sides = make_sidecars(df, amp="bf16", channels_last="on", compile=True)
    for s in sides:
        s["compute"] = {"device": "cpu", "precision": "bf16", "channels_last": True}
    facts = report.provenance(df, sides, None)
    line = f"device cpu, parameters fp32, autocast bf16, channels-last on, torch.compile on: {len(sides)} job(s)"
    assert facts["numerics"] == [line]
    assert any(head.startswith("Numerics") and lines == [line] for head, lines in report._facts_lines(facts))


def _tiny_fit(switch: str) -> dict[str, torch.Tensor]:
    if switch == "public":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        deterministic()
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(0)
    model = create_model("mildnet", in_channels=3, classes=1, width=4, depth=3)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 3, 32, 32, generator=g), (torch.rand(8, 1, 32, 32, generator=g) > 0.5).float()
    cfg = TrainConfig(image_size=32, width=4, depth=3, epochs=2)
    return fit(model, cfg, (x[2:], y[2:]), (x[:2], y[:2]), seed=3).model.state_dict()


@pytest.mark.slow
def test_the_cheap_deterministic_switch_gives_identical_weights() -> None:
    try:
        cheap, public = _tiny_fit("cheap"), _tiny_fit("public")
    finally:
        torch.use_deterministic_algorithms(False)
    assert all(torch.equal(cheap[k], public[k]) for k in cheap)


def test_a_worker_imports_neither_the_compiler_nor_albumentations() -> None:
    """What a worker imports before its first job (runner, execute, seeding): not ``torch._dynamo`` /
    ``torch._inductor`` (the deterministic switch) nor albumentations (only ``augment: true`` needs it)."""
    code = (
        "import sys, torch; import bench.run.runner, bench.run.execute; from bench.run.train import seed_everything; "
        "seed_everything(0, 1); assert torch.are_deterministic_algorithms_enabled(); "
        "print(sorted(m for m in ('torch._dynamo', 'torch._inductor', 'albumentations') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_compile_setting_trains_through_torch_compile(monkeypatch: pytest.MonkeyPatch) -> None:
    """``compile: true`` hands the network to ``torch.compile`` (spied here: compiling takes a minute on
    CPU) with the compiler's deterministic flag on, and trains through what it returns."""
    calls: list[torch.nn.Module] = []

    class Spy(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner, self.forwards = inner, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.forwards += 1
            return self.inner(x)

    def fake_compile(model: torch.nn.Module) -> torch.nn.Module:
        import torch._inductor.config as inductor_config

        assert inductor_config.deterministic
        calls.append(Spy(model))
        return calls[-1]

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, classes=1, width=4, depth=3)
    x, y = torch.rand(6, 1, 32, 32), (torch.rand(6, 1, 32, 32) > 0.5).float()
    try:
        result = fit(
            model,
            TrainConfig(image_size=32, width=4, depth=3, epochs=1, compile=True),
            (x[2:], y[2:]),
            (x[:2], y[:2]),
            seed=0,
        )
    finally:
        torch.use_deterministic_algorithms(False)
    assert (
        len(calls) == 1 and calls[0].inner is model and calls[0].forwards == 2
    )  # one training batch, one selection batch
    assert result.model is model
    fit(model, TrainConfig(image_size=32, width=4, depth=3, epochs=1), (x[2:], y[2:]), (x[:2], y[:2]), seed=0)
    assert len(calls) == 1  # off by default


def test_selection_and_inference_run_under_the_jobs_autocast_and_the_job_records_it(tmp_path: Path) -> None:
    """On a GPU the default autocast is bf16/fp16; asked for explicitly (amp=bf16) the same path runs on a CPU:
    the selection loss of each epoch and the scored probabilities are computed under autocast, not in fp32,
    and the sidecar says so for training, selection and inference."""
    from bench.config import load_profile, replace
    from bench.results import store
    from bench.run.devices import precision_for
    from bench.run.evaluate import predict_batches
    from bench.run.plan import plan, select
    from bench.run.runner import run_jobs
    from bench.run.train import mean_loss

    cfg = replace(TrainConfig(image_size=32, width=4, depth=3, epochs=1), amp="bf16")
    prec = precision_for("cpu", "bf16")
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 32, 32, generator=gen), (torch.rand(6, 1, 32, 32, generator=gen) > 0.5).float()
    torch.manual_seed(0)
    result = fit(create_model("unet", in_channels=3, classes=1, width=4, depth=3), cfg, (x, y), (x, y), seed=0)
    criterion = torch.nn.BCEWithLogitsLoss()
    with prec.autocast("cpu"):
        under_autocast = mean_loss(result.model, x, y, cfg.batch_size, criterion)
    assert (
        result.history[0]["select_loss"] == under_autocast != mean_loss(result.model, x, y, cfg.batch_size, criterion)
    )
    plain = next(predict_batches(result.model, x, 6))
    mixed = next(predict_batches(result.model, x, 6, autocast=lambda: prec.autocast("cpu")))
    assert mixed.dtype == plain.dtype == "float32" and 0 < abs(mixed - plain).max() < 0.05

    profile = load_profile("quick", {"epochs": "1", "image_size": "32", "width": "4", "depth": "3", "amp": "bf16"})
    jobs = plan(select("unet", "dsb2018", False, "holdout", (0,)), profile, tmp_path)
    assert [r.status for r in run_jobs(jobs, tmp_path, progress=False)] == ["ok"]
    (side,) = store.sidecars(tmp_path)
    c = side["compute"]
    assert (c["precision"], c["selection_precision"], c["inference_precision"]) == ("bf16", "bf16", "bf16")
