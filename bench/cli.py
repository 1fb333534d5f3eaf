"""Command line: ``bench <command>``, one per entry of ``PARSERS`` (``bench --help`` lists them).

Each sub-command parses its arguments, builds a config object once and calls library functions;
the work lives in the library modules. Bad input (``bench.errors.UserError``) exits with status 2 and
a one-line reason; any other exception is a bug and shows its traceback (status 1).

This module is the entry point (``main``, ``build_parser``); each command's options and handler live in
``bench.commands`` (``add_<command>`` and ``cmd_<command>``), listed here in ``PARSERS``.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from bench import __version__
from bench.commands.audit import add_audit, cmd_audit
from bench.commands.check import add_check, cmd_check
from bench.commands.data import add_data, cmd_data
from bench.commands.export import add_export, cmd_export
from bench.commands.figures import add_figure, add_saliency, cmd_figure, cmd_saliency
from bench.commands.listing import add_list, cmd_list
from bench.commands.predict import add_evaluate, add_predict, cmd_evaluate, cmd_predict
from bench.commands.report import add_report, add_ttest, cmd_report, cmd_ttest
from bench.commands.run import add_run, cmd_run
from bench.commands.status import add_status, cmd_status
from bench.commands.tune import add_tune, cmd_tune
from bench.errors import UserError, environment_error

PARSERS = {
    "list": (add_list, cmd_list, "list architectures (params, GFLOPs) and datasets"),
    "data": (add_data, cmd_data, "check dataset folders in their native layouts"),
    "run": (add_run, cmd_run, "train and score architectures on identical folds"),
    "status": (add_status, cmd_status, "done / damaged / running / crashed / queued / failed / missing per job"),
    "export": (add_export, cmd_export, "write the tidy per-image table as CSV or Parquet"),
    "report": (add_report, cmd_report, "generate the paper's tables and figures from the results"),
    "ttest": (add_ttest, cmd_ttest, "paired tests of a reference architecture against the others"),
    "check": (add_check, cmd_check, "re-run the drift benchmark and compare it with the committed baseline"),
    "predict": (add_predict, cmd_predict, "write masks for new images with the stored fold models"),
    "evaluate": (add_evaluate, cmd_evaluate, "score stored models on an external cohort or at native resolution"),
    "figure": (add_figure, cmd_figure, "qualitative grids and failure galleries from the stored predictions"),
    "saliency": (add_saliency, cmd_saliency, "gradient saliency maps per decoder stage of stored models"),
    "tune": (add_tune, cmd_tune, "grid search on validation folds, every architecture the same grid (Table 3)"),
    "audit": (add_audit, cmd_audit, "validation checklist of a results folder: PASS / WARN / FAIL with evidence"),
}


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark 2D biomedical segmentation networks "
        "(MILDNet, Gudhe et al., Sci Rep 2021, and its baselines).",
    )
    parser.add_argument("--version", action="version", version=f"bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, _, help_text) in PARSERS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _one_line_result_warnings() -> Any:
    """A context in which every warning prints as one line, ``bench: warning: <message>``, with no source file
    or line: a ``ResultWarning`` (a damaged result, too few units, ...) as it is, any other warning (from a
    library) with its category, so that nothing a user reads looks like a crash."""
    import warnings

    from bench.errors import ResultWarning

    context = warnings.catch_warnings()
    context.__enter__()

    def show(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        kind = "" if issubclass(category, ResultWarning) else f" ({category.__name__})"
        print(f"bench: warning: {message}{kind}", file=sys.stderr)

    warnings.showwarning = show
    return context


#: The line after the traceback of an exception that is not a ``UserError``: a bug, not bad input.
BUG_HINT = (
    "bench {command}: internal error: this is a bug in bench, not a problem with your input; please "
    "report it with the command line and the traceback above"
)


def _quiet_stdout() -> None:
    """After the reader of our output has gone (``bench ... | head``): send what is left to /dev/null, so
    that the interpreter's last flush does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # not a real file (a test's stand-in): nothing to redirect
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit status. Bad input (``bench.errors.UserError``) prints one
    line, ``bench <command>: error: <message>``, and returns 2, as does an OS error about the environment
    (``environment_error``: a full disk, a read-only or unusable path); a closed output pipe ends quietly
    with 0; any other exception is a bug: its full traceback is printed, then a line saying so, and 1 is
    returned."""
    args = build_parser().parse_args(argv)
    context = _one_line_result_warnings()
    try:
        return PARSERS[args.command][1](args)
    except UserError as exc:
        print(f"bench {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output stopped reading: stop quietly, as other tools do
        _quiet_stdout()
        return 0
    except OSError as exc:
        message = environment_error(exc)
        if message is None:
            traceback.print_exc()
            print(BUG_HINT.format(command=args.command), file=sys.stderr)
            return 1
        print(f"bench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001  (not swallowed: a bug is shown with its traceback, then named as one)
        traceback.print_exc()
        print(BUG_HINT.format(command=args.command), file=sys.stderr)
        return 1
    finally:
        context.__exit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main())
