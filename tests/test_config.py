"""Settings are checked before any job starts, and every error names the key (and the file)."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from bench.cli import main
from bench.config import INIT_CHOICES, TrainConfig, load_profile
from bench.errors import UserError


@pytest.mark.parametrize(
    "setting, message",
    [
        ("epochs=three", "setting epochs expects an integer, got 'three'"),
        ("lr=fast", "setting lr expects a number"),
        ("augment=maybe", "setting augment expects true/false"),
        ("epochs=0", "setting epochs=0: must be >= 1"),
        ("batch_size=0", "setting batch_size=0: must be >= 1"),
        ("threads=0", "setting threads=0: must be >= 1"),
        ("lr=0", "setting lr=0.0: must be a finite number > 0"),
        ("lr=inf", "setting lr=inf"),
        ("test_fraction=1", "setting test_fraction=1.0: must be in (0, 1)"),
        ("n_folds=1", "setting n_folds=1: must be >= 2"),
        ("image_size=0", "setting image_size=0: must be >= 8"),
        ("image_size=36", "setting image_size=36: must be a multiple of 16"),
        ("depth=1", "setting depth=1: must be >= 2"),
        ("device=gpu", "setting device='gpu': must be auto, cpu, cuda or cuda:N"),
        ("init=kaiming", "setting init='kaiming': must be one of xavier_uniform, xavier_normal"),
        ("synthetic_n=0", "setting synthetic_n=0: must be none or >= 1"),
        ("epoch=3", "unknown setting 'epoch'"),
        ("precision=fp16", "setting precision='fp16': must be one of fp32, fp64"),
        ("amp=fp8", "setting amp='fp8': must be one of auto, off, bf16, fp16"),
        ("inner_fraction=0", "setting inner_fraction=0.0: must be in (0, 1)"),
    ],
)
def test_a_bad_setting_stops_the_run_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture, setting: str, message: str
) -> None:
    res = tmp_path / "results"
    assert (
        main(["run", "--results", str(res), "--arch", "unet", "--dataset", "dsb2018", "--quiet", "--set", setting]) == 2
    )
    assert message in capsys.readouterr().err
    assert not res.exists()  # nothing planned, nothing written


def test_good_settings_pass(tmp_path: Path) -> None:
    for name in ("quick", "paper", "check"):
        load_profile(name)
    cfg = load_profile(
        "quick", {"device": "cuda:1", "init": "xavier_normal", "synthetic_n": "none", "lr": "1e-4"}
    ).train
    assert (cfg.device, cfg.init, cfg.synthetic_n, cfg.lr) == ("cuda:1", "xavier_normal", None, 1e-4)


def test_values_of_the_wrong_type_are_refused_in_code_too() -> None:
    with pytest.raises(ValueError, match=r"setting epochs=2.5: expected an integer"):
        TrainConfig(epochs=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="setting augment=1: expected true or false"):
        TrainConfig(augment=1)  # type: ignore[arg-type]


def test_choices_are_what_the_code_accepts() -> None:
    from bench.architectures._blocks import InitMode
    from bench.config import AMP_CHOICES, CHANNELS_LAST_CHOICES, PRECISION_CHOICES
    from bench.run import devices, train

    assert set(INIT_CHOICES) == set(typing.get_args(InitMode))
    assert set(PRECISION_CHOICES) == set(train.PRECISIONS)
    assert (AMP_CHOICES, CHANNELS_LAST_CHOICES) == (devices.AMP_CHOICES, devices.CHANNELS_LAST_CHOICES)


def test_yaml_on_off_mean_the_strings(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("image_size: 32\ndepth: 3\nchannels_last: off\namp: off\n")  # YAML reads off as false
    cfg = load_profile(str(path)).train
    assert (cfg.channels_last, cfg.amp) == ("off", "off")


def test_a_malformed_profile_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "mine.yaml"
    bad.write_text("image_size: 32\nwidth: 4\nepochs: [1, 2\ndepth: 3\n")
    assert (
        main(["run", "--profile", str(bad), "--arch", "unet", "--dataset", "dsb2018", "--results", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err
    assert f"profile {bad}, line 4" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("epochs: three\n", "setting epochs expects an integer, got 'three'"),
        ("epochs: 0\n", "setting epochs=0: must be >= 1"),
        ("epoch: 3\n", "unknown setting 'epoch'"),
        ("- 1\n- 2\n", "expected a mapping of settings"),
        ("folds: [0, one]\n", "folds must be a list of integers >= 0"),
    ],
)
def test_a_bad_value_in_a_profile_names_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("image_size: 32\nwidth: 4\ndepth: 3\n" + text if not text.startswith("-") else text)
    with pytest.raises((ValueError, KeyError), match=message) as info:
        load_profile(str(path))
    if "epochs=0" not in message:
        assert str(path) in str(info.value)


def test_optimizer_and_scheduler_settings_from_the_command_line() -> None:
    import torch

    from bench.config import OPTIMIZER_CHOICES, SCHEDULER_CHOICES
    from bench.run.train import make_optimizer, make_scheduler

    cfg = load_profile("quick", {"optimizer": "sgd", "scheduler": "step", "step_size": "5", "lr_gamma": "0.5"}).train
    assert (cfg.optimizer, cfg.scheduler, cfg.step_size, cfg.lr_gamma) == ("sgd", "step", 5, 0.5)
    param = [torch.nn.Parameter(torch.zeros(1))]
    for name in OPTIMIZER_CHOICES:  # every accepted choice builds
        make_optimizer(param, TrainConfig(optimizer=name))
    for name in SCHEDULER_CHOICES:
        make_scheduler(make_optimizer(param, cfg), TrainConfig(scheduler=name), 3)
    with pytest.raises(ValueError, match="setting optimizer='adagrad'"):
        load_profile("quick", {"optimizer": "adagrad"})


def test_a_setting_scoped_to_one_dataset(tmp_path: Path) -> None:
    """`--set lgg_mri.n_folds=2` (or an alias) applies to that dataset only, is recorded with its jobs and
    planned; a bad scoped key or value names it."""
    from bench.config import load_profile
    from bench.run.plan import plan, select

    profile = load_profile("quick", {"mri.n_folds": "2", "epochs": "3", "isic2018.lr": "0.01"})
    assert profile.scoped == (("isic2018", (("lr", 0.01),)), ("lgg_mri", (("n_folds", 2),)))
    assert profile.for_dataset("lgg_mri").train.n_folds == 2 and profile.for_dataset("lgg_mri").train.epochs == 3
    assert profile.for_dataset("dsb2018").train == profile.train and profile.train.n_folds == 5
    tiny = {"image_size": "32", "width": "4", "depth": "3", "epochs": "1", "synthetic_n": "12"}
    jobs = plan(
        select("unet", "lgg_mri,dsb2018", False, "holdout"),
        load_profile("quick", {**tiny, "lgg_mri.n_folds": "2"}),
        tmp_path / "results",
    )
    assert {(j.dataset, j.train.n_folds) for j in jobs} == {("lgg_mri", 2), ("dsb2018", 5)}
    for bad, match in (
        ({"nope.n_folds": "2"}, "--set nope.n_folds"),
        ({"lgg_mri.n_fold": "2"}, "--set lgg_mri.n_fold: unknown setting"),
        ({"lgg_mri.n_folds": "1"}, "n_folds=1: must be >= 2"),
        ({"lgg_mri.device": "cuda"}, "applies to the whole run"),
    ):
        with pytest.raises(UserError, match=match):
            load_profile("quick", bad)
