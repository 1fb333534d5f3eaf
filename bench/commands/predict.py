"""``bench predict`` (masks for new images) and ``bench evaluate`` (external or native-resolution scores) with stored models."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands.common import at_resolution, canonical_arch, csv_ints, resolved_device


def cmd_predict(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.models.predict import PredictRequest, predict_folder

    req = PredictRequest(
        results=Path(args.from_),
        dataset=canonical_name(args.dataset),
        arch=canonical_arch(args.arch),
        images=Path(args.images),
        out=Path(args.out),
        folds=args.folds,
        protocol=args.protocol,
        profile=args.profile,
        ensemble=args.ensemble,
        device=resolved_device(args.device),
        include_untrained=args.include_untrained,
    )
    for name, files in predict_folder(req).items():
        print(f"{name}: {len(files)} mask file(s) in {Path(args.out) / name}")
    return 0


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", default="results", help="results folder of the sweep (default ./results)")
    p.add_argument("--dataset", required=True, help="dataset the models were trained on (sets the mask format)")
    p.add_argument("--arch", required=True, help="architecture name")
    p.add_argument("--folds", "--fold", type=csv_ints, help="fold models to use, comma-separated (default: all)")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--profile", help="only models of this profile (when the folder holds several)")
    p.add_argument("--images", required=True, help="folder of images (searched recursively; labels not needed)")
    p.add_argument("--out", required=True, help="output folder: one sub-folder of masks per fold model")
    p.add_argument("--ensemble", action="store_true", help="also write the fold models' mean-probability masks")
    p.add_argument(
        "--include-untrained",
        action="store_true",
        help="ensemble fold models flagged 'did not learn' too (left out with a warning by default)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from bench.datasets import canonical_name
    from bench.models.external import EvaluateRequest, evaluate_stored, external_drop
    from bench.report.report import report_table
    from bench.report.table_render import render
    from bench.results import store

    resolutions = ("input", "native") if args.resolution == "both" else (args.resolution,)
    req = EvaluateRequest(
        results=Path(args.from_),
        dataset=canonical_name(args.dataset),
        data_root=Path(args.data_root) if args.data_root else None,
        arch=canonical_arch(args.arch),
        folds=args.folds,
        protocol=args.protocol,
        profile=args.profile,
        resolutions=resolutions,
        skip=tuple(v for v in (args.skip or "").split(",") if v),
        device=resolved_device(args.device),
        force=args.force,
    )
    for status in evaluate_stored(req):
        print(f"{status['status']:>7}  {status['label']}: {status['n_rows']} rows -> {status['path']}")
    if req.data_root is not None:
        df = store.load_all(req.results)
        df = df[df["dataset"] == req.dataset]
        for resolution in resolutions:
            at = at_resolution(df, resolution)
            print(f"\n[{resolution} resolution]")
            print(report_table(at, 5, "md", split="external"))
            drop = external_drop(at)
            print(
                render(drop, "md")
                if len(drop)
                else f"(no internal test-set rows at {resolution} resolution to "
                f"compare with; for native: bench evaluate --from {args.from_} --dataset {req.dataset} "
                "--resolution native)"
            )
    return 0


def add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="from_", default="results", help="results folder of the sweep (default ./results)")
    p.add_argument("--dataset", required=True)
    p.add_argument(
        "--data-root",
        help="folder holding <dataset>/ in its native layout: an external labelled "
        "cohort (rows with split=external). Without it: the models' own val/test "
        "images (needs --resolution native)",
    )
    p.add_argument("--arch", help="one architecture (default: every stored one)")
    p.add_argument("--folds", "--fold", type=csv_ints, help="fold models, comma-separated (default: all)")
    p.add_argument("--protocol", default="holdout", choices=["holdout", "cv"])
    p.add_argument("--profile", help="only models of this profile")
    p.add_argument(
        "--resolution",
        default="input",
        choices=["input", "native", "both"],
        help="input: metrics on the network-size masks (as bench run); native: predictions resized "
        "to each image's own size, distances in native pixels; both",
    )
    p.add_argument("--skip", help="case ids of the cohort to exclude, comma-separated")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    p.add_argument("--force", action="store_true", help="recompute finished evaluations")
