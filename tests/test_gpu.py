"""The GPU path, where CUDA exists (skipped elsewhere): one paper-scale training step of every paper
architecture with mixed precision and channels-last, and one job end to end whose sidecar must record the
numerics it really ran with (device, autocast of training, selection and inference, memory format)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.architectures import PAPER_ARCHS, create_model
from bench.config import load_profile, replace
from bench.results import store
from bench.run.devices import bf16_native, precision_for
from bench.run.plan import plan, select
from bench.run.runner import run_jobs
from bench.run.train import fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("arch", PAPER_ARCHS)
def test_one_paper_scale_step_per_architecture_with_amp_and_channels_last(arch: str) -> None:
    """256 px, width 32, depth 5, batch 4 (the paper profile), on cuda:0 with the GPU defaults."""
    cfg = replace(load_profile("paper", {"epochs": "1"}).train, device="cuda:0")
    prec = precision_for("cuda:0", cfg.amp, cfg.channels_last)
    assert prec.name == ("bf16" if bf16_native("cuda:0") else "fp16") and prec.channels_last
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 256, 256, generator=gen)
    y = (torch.rand(4, 1, 256, 256, generator=gen) > 0.5).float()
    torch.manual_seed(0)
    model = create_model(arch, in_channels=3, classes=1, width=cfg.width, depth=cfg.depth)
    result = fit(model, cfg, (x, y), (x[:2], y[:2]), seed=0)
    (epoch,) = result.history
    assert torch.isfinite(torch.tensor([epoch["train_loss"], epoch["select_loss"]])).all()
    assert next(result.model.parameters()).device.type == "cuda"


def test_a_gpu_job_records_the_numerics_it_ran_with(tmp_path: Path) -> None:
    profile = load_profile("quick", {"epochs": "1", "image_size": "64", "width": "8", "device": "cuda"})
    jobs = plan(select("unet", "dsb2018", False, "holdout", (0,)), profile, tmp_path)
    assert [r.status for r in run_jobs(jobs, tmp_path, n_jobs=1, progress=False)] == ["ok"]
    (side,) = store.sidecars(tmp_path)
    c = side["compute"]
    expected = "bf16" if bf16_native("cuda:0") else "fp16"
    assert c["device"].startswith("cuda") and c["memory_kind"] == "cuda_allocated"
    assert (c["precision"], c["selection_precision"], c["inference_precision"]) == (expected,) * 3
    assert c["channels_last"] is True and c["grad_scaler"] is (expected == "fp16")
    assert side["where"]["engine"] == "local"
