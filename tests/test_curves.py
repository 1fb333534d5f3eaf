"""Learning curves from the sidecars' per-epoch history (bench.report.curves)."""

from __future__ import annotations

import pytest

from bench.report.curves import curves_figure, history_table, is_flat, learning_curves


def _sidecar(dataset: str, arch: str, fold: int, select: list[float], best: int, bad: bool = False) -> dict:
    key = f"{dataset}-{arch}-{fold}"
    history = [{"epoch": e, "train_loss": s + 0.1, "select_loss": s, "lr": 1e-3} for e, s in enumerate(select)]
    return {
        "job": {
            "dataset": dataset,
            "arch": arch,
            "protocol": "holdout",
            "fold": fold,
            "seed": 0,
            "source": "synthetic",
        },
        "key": key,
        "status": "ok",
        "history": history,
        "best_epoch": best,
        "learning": {"did_not_learn": bad, "reasons": ["flat"] if bad else []},
    }


def sweep() -> list[dict]:
    """2 datasets x 2 archs x 2 folds; U-Net on isic never moves (0.693 every epoch)."""
    out = []
    for ds in ("isic2018", "dsb2018"):
        for fold in (0, 1):
            out.append(_sidecar(ds, "mildnet", fold, [0.9, 0.5 - 0.05 * fold, 0.4, 0.45], best=2))
            flat = ds == "isic2018"
            out.append(
                _sidecar(
                    ds, "unet", fold, [0.693] * 4 if flat else [0.8, 0.7, 0.6, 0.5], best=0 if flat else 3, bad=flat
                )
            )
    out.append(
        {
            "job": {"dataset": "isic2018", "arch": "unet", "protocol": "holdout", "fold": 2, "seed": 0},
            "key": "failed",
            "status": "failed",
            "error": "boom",
        }
    )
    return out


def test_history_table_has_one_row_per_job_and_epoch() -> None:
    hist = history_table(sweep())
    assert len(hist) == 8 * 4  # the failed job has no history
    assert hist["job_key"].nunique() == 8
    assert set(hist.loc[hist["job_key"] == "dsb2018-unet-1", "best_epoch"]) == {3}


def test_every_job_drawn_with_its_chosen_epoch_marked() -> None:
    sides = sweep()
    fig = curves_figure(history_table(sides))
    axes = fig.get_axes()
    assert len(axes) == 2  # one panel per dataset
    chosen = {
        ln.get_gid().split(":", 1)[1]: ln
        for ax in axes
        for ln in ax.get_lines()
        if (ln.get_gid() or "").startswith("chosen:")
    }
    assert set(chosen) == {s["key"] for s in sides if s["status"] == "ok"}
    for side in sides[:-1]:
        x, y = chosen[side["key"]].get_data()
        assert x[0] == side["best_epoch"]
        assert y[0] == pytest.approx(side["history"][side["best_epoch"]]["select_loss"])
    curves = [ln.get_gid() for ax in axes for ln in ax.get_lines() if (ln.get_gid() or "").startswith("select:")]
    assert sorted(curves) == sorted(
        f"select:{d}:holdout:{a}" for d in ("isic2018", "dsb2018") for a in ("mildnet", "unet")
    )


def test_flat_curve_named_in_the_legend() -> None:
    fig = curves_figure(history_table(sweep()))
    legends = {
        ax.get_title().split(",")[0]: [t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.get_axes()
    }
    assert "U-Net (flat 2/2, did not learn 2/2)" in legends["ISIC-2018"]
    assert "U-Net" in legends["DSB-2018"]
    assert is_flat([0.693, 0.6931, 0.6929]) and not is_flat([0.8, 0.7])


def test_no_history_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(ValueError, match="no finished job with a training history"):
        learning_curves([{"status": "failed", "job": {}}], tmp_path)


def test_writes_png_and_pdf(tmp_path) -> None:
    paths = learning_curves(sweep(), tmp_path)
    assert [p.name for p in paths] == ["learning_curves.png", "learning_curves.pdf"]
    assert all(p.stat().st_size > 1000 for p in paths)
