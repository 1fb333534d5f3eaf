"""The optimiser and learning-rate scheduler settings (Table 3's grid): they change training, they are
part of the job key, bad values are refused naming the key, and comparisons refuse mixing them."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from results_fixture import every_comparison, make_results, make_sidecars

from bench.architectures import create_model
from bench.cli import main
from bench.config import OPTIMIZER_CHOICES, SCHEDULER_CHOICES, Job, TrainConfig
from bench.results import selection
from bench.run.train import fit, seed_everything

TINY = {"image_size": 32, "width": 4, "depth": 3}


def tiny_fit(epochs: int = 1, **settings: object) -> tuple[dict[str, torch.Tensor], list[dict[str, float]]]:
    """A width-4 U-Net trained on 8 random 32 px images (selection on 4 of them): final weights and history."""
    seed_everything(0, 1)
    model = create_model("unet", in_channels=1, width=4, depth=3)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 32, 32, generator=gen)
    y = (x > 0.5).float()
    result = fit(model, TrainConfig(epochs=epochs, **TINY, **settings), (x, y), (x[:4], y[:4]), seed=1)
    return {k: v.detach().clone() for k, v in result.model.state_dict().items()}, result.history


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_each_optimizer_trains_other_weights_and_is_repeatable() -> None:
    weights = {name: tiny_fit(optimizer=name)[0] for name in OPTIMIZER_CHOICES}
    assert same(weights["adam"], tiny_fit()[0])  # the default is Adam, and the run is deterministic
    names = list(weights)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not same(weights[a], weights[b]), f"{a} and {b} gave identical weights after one epoch"
    # the momentum setting reaches SGD and RMSprop too
    assert not same(weights["sgd"], tiny_fit(optimizer="sgd", beta1=0.3)[0])
    assert not same(weights["rmsprop"], tiny_fit(optimizer="rmsprop", beta1=0.3)[0])


@pytest.mark.slow
def test_each_scheduler_sets_the_learning_rate_it_promises() -> None:
    lr = 1e-3
    expected = {  # the learning rate after each of 4 epochs (what the next epoch uses)
        "plateau": [lr] * 4,  # patience 10: no reduction within 4 epochs
        "none": [lr] * 4,
        "step": [lr, lr * 0.1, lr * 0.1, lr * 0.01],  # step_size 2
        "multistep": [lr, lr * 0.1, lr * 0.01, lr * 0.01],  # after 50% and 75% of 4 epochs
        "cosine": [lr * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in (1, 2, 3, 4)],
    }
    for name, lrs in expected.items():
        _, history = tiny_fit(4, scheduler=name, step_size=2)
        assert [h["lr"] for h in history] == pytest.approx(lrs, rel=1e-9, abs=1e-12), name
    _, history = tiny_fit(4, scheduler="cyclic", step_size=30)  # per batch, rising from lr * lr_gamma
    cyclic = [h["lr"] for h in history]
    assert all(lr * 0.1 < a < b < lr for a, b in itertools.pairwise(cyclic))
    # the cyclic schedule moves the learning rate within the first epoch, so the weights differ from Adam's
    assert not same(tiny_fit(scheduler="cyclic")[0], tiny_fit()[0])


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"optimizer": "adamw"}, "setting optimizer='adamw': must be one of adam, sgd, rmsprop"),
        (
            {"scheduler": "onecycle"},
            ("setting scheduler='onecycle': must be one of plateau, step, multistep, cosine, cyclic, none"),
        ),
        ({"lr_gamma": 1.0}, "setting lr_gamma=1.0: must be in (0, 1)"),
        ({"step_size": 0}, "setting step_size=0: must be >= 1"),
        ({"optimizer": 1}, "setting optimizer=1: expected a string"),
    ],
)
def test_bad_optimizer_or_scheduler_is_a_clear_error(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**settings)


def test_an_unknown_optimizer_stops_the_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    res = tmp_path / "results"
    assert (
        main(
            [
                "run",
                "--results",
                str(res),
                "--arch",
                "unet",
                "--dataset",
                "dsb2018",
                "--quiet",
                "--set",
                "optimizer=lbfgs",
            ]
        )
        == 2
    )
    assert "setting optimizer='lbfgs': must be one of adam, sgd, rmsprop" in capsys.readouterr().err
    assert not res.exists()


def test_defaults_are_the_papers_and_every_choice_is_in_the_job_key() -> None:
    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.scheduler) == ("adam", "plateau")
    job = Job("dsb2018", "unet", "holdout", 0, 0, "quick", cfg)
    keys = {job.key}
    for field, choices in (("optimizer", OPTIMIZER_CHOICES), ("scheduler", SCHEDULER_CHOICES)):
        for value in choices:
            if value != getattr(cfg, field):
                keys.add(Job("dsb2018", "unet", "holdout", 0, 0, "quick", TrainConfig(**{field: value})).key)
    for field, value in (("lr_gamma", 0.5), ("step_size", 5)):
        keys.add(Job("dsb2018", "unet", "holdout", 0, 0, "quick", TrainConfig(**{field: value})).key)
    assert len(keys) == 1 + (len(OPTIMIZER_CHOICES) - 1) + (len(SCHEDULER_CHOICES) - 1) + 2


@pytest.mark.parametrize(
    "setting, other, shown", [("optimizer", "sgd", "adam/sgd"), ("scheduler", "cosine", "cosine/plateau")]
)
def test_comparisons_refuse_mixed_optimizers_and_schedulers_like_mixed_lr(setting: str, other: str, shown: str) -> None:
    base = make_results(datasets=("lgg_mri",), archs=("unet", "mildnet"), n_cases=20)
    sides = make_sidecars(base)
    again = make_results(datasets=("lgg_mri",), archs=("unet",), n_cases=20, rng_seed=1)
    again["job_key"] = "x" + again["job_key"].str[1:]
    again["fold"] += 10
    sides += make_sidecars(again, **{setting: other})
    df = pd.concat([base, again], ignore_index=True)
    settings = selection.settings_table(sides)
    assert setting in settings.columns
    full = selection.attach(df, settings)
    pattern = rf"differ in more than the architecture: lgg_mri: {setting} \(mildnet: \w+; unet: {shown}\).*--where"
    for name, make in every_comparison(full).items():
        with pytest.raises(ValueError, match=pattern):
            make()
        print(name, "refused")
    default = getattr(TrainConfig(), setting)
    rows, _, _, _ = selection.apply_selection(df, None, sides, {setting: default})
    assert set(rows["job_key"]) == set(base["job_key"])
    holdout = rows[rows["protocol"] == "holdout"]
    selection.check_like_for_like(selection.attach(holdout, settings))  # one configuration: accepted
