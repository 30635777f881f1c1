"""The ``nanotools`` command line.

``nanotools reconstruct INPUT --out result.h5``
    The whole pipeline in Python (:func:`nanotools.pipeline.reconstruct_file`).
``nanotools run [INPUT] --out DIR``
    The stage notebooks headless, with an HTML report
    (:func:`nanotools.report.run_report`).
``nanotools check INPUT``
    Read and check a map; print its axes and the out-of-plane choice.
``nanotools series INPUT... --out DIR``
    One reconstruction per map, on Dask (:func:`nanotools.series.run_series`).

Every mistake of the user (a :class:`~nanotools.errors.NanotoolsError`)
ends as one line ``error: <message naming the file>`` on stderr and exit
status 2, with no traceback; warnings print as ``warning: ...``. Ctrl-C or
SIGTERM stops cleanly (exit 130 / 143) and leaves no half-written result.
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import warnings
from typing import Sequence

from . import __version__
from .errors import NanotoolsError, ParameterError

__all__ = ["main", "build_parser"]

EXIT_USER_ERROR = 2


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so ``finally`` blocks (temporary
    files, progress bars) run; BaseException so no ``except Exception`` in a
    stage swallows it."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, like every other user error
        raise ParameterError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _add_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--param", nargs=2, action="append", default=[],
                   metavar=("NAME", "VALUE"),
                   help="set a parameter (repeatable); see nanotools.params.PARAMETERS")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--force", action="store_true", help="overwrite an existing result")


def _add_hkl(p: argparse.ArgumentParser, *, scan: bool = True) -> None:
    p.add_argument("--hkl", nargs=3, metavar=("H", "K", "L"), default=None,
                   help="cut the window around this reflection out of an H, K, L volume, "
                        "reading only that window (-p window_rlu, -p reduce)")
    if scan:
        p.add_argument("--scan", type=int, default=None, metavar="N",
                       help="which map of a series file (4-D NXdata), from 0")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and the tests)."""
    parser = _Parser(prog="nanotools", description=(
        "Real-space images of periodic thin-film nanotextures from X-ray "
        "reciprocal-space maps."))
    parser.add_argument("--version", action="version", version=f"nanotools {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    rec = sub.add_parser("reconstruct", help="run the whole pipeline and write result.h5")
    rec.add_argument("input", metavar="INPUT", help="map file (NeXus/HDF5, .npy, .npz)")
    rec.add_argument("--out", required=True, metavar="RESULT", help="result file (result.h5)")
    rec.add_argument("--data", metavar="PATH", default=None,
                     help="HDF5 path of the NXdata group to read (default: follow 'default')")
    rec.add_argument("--axis", nargs=4, action="append", default=None,
                     metavar=("NAME", "START", "STOP", "UNITS"),
                     help="axes of a .npy/.npz map, one per dimension in array order; "
                          "UNITS 1/angstrom, 1/nm or rlu")
    rec.add_argument("--out-of-plane", metavar="AXIS", default=None,
                     help="name of the out-of-plane axis (default: from metadata and data)")
    _add_hkl(rec)
    rec.add_argument("--no-progress", action="store_true", help="no progress bar")
    rec.add_argument("--no-checkpoint", action="store_true",
                     help="do not save finished starts (no resume after an interruption)")
    _add_params(rec)

    chk = sub.add_parser("check", help="read and check a map; print what nanotools sees")
    chk.add_argument("input", metavar="INPUT", help="map file (NeXus/HDF5, .npy, .npz)")
    chk.add_argument("--data", metavar="PATH", default=None, help="HDF5 path of the NXdata group")
    chk.add_argument("--axis", nargs=4, action="append", default=None,
                     metavar=("NAME", "START", "STOP", "UNITS"), help="axes of a .npy/.npz map")
    chk.add_argument("--out-of-plane", metavar="AXIS", default=None,
                     help="name of the out-of-plane axis")
    chk.add_argument("-p", "--param", nargs=2, action="append", default=[],
                     metavar=("NAME", "VALUE"), help="parameters (unit_cell is used)")
    chk.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    _add_hkl(chk)
    chk.add_argument("--json", action="store_true",
                     help="print one JSON object (shape, axes, out-of-plane axis, Bragg peak)")

    run = sub.add_parser("run", help="run the stage notebooks headless, write report.html")
    run.add_argument("input", metavar="INPUT", nargs="?", default=None,
                     help="map file (default: the bundled example)")
    run.add_argument("--out", required=True, metavar="DIR", help="report folder")
    _add_hkl(run, scan=False)
    _add_params(run)

    ser = sub.add_parser("series", help="reconstruct a series of maps (Dask)")
    ser.add_argument("input", metavar="INPUT", nargs="+",
                     help="map files, or one file holding a series (4-D NXdata)")
    _add_hkl(ser, scan=False)
    ser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    ser.add_argument("--scheduler", metavar="ADDRESS", default=None,
                     help="Dask scheduler address (default: a local cluster)")
    _add_params(ser)
    return parser


def _delegate(module: str, function: str):
    """Import ``nanotools.<module>.<function>`` only when its command runs, so
    ``reconstruct`` needs neither papermill nor Dask."""
    try:
        mod = importlib.import_module(f"nanotools.{module}")
    except ModuleNotFoundError as exc:
        if exc.name in (f"nanotools.{module}",):
            raise NanotoolsError(f"this installation has no nanotools.{module} "
                                 f"(needed by this command)") from None
        raise NanotoolsError(f"nanotools.{module} needs '{exc.name}', which is not "
                             "installed") from None
    func = getattr(mod, function, None)
    if func is None:
        raise NanotoolsError(f"nanotools.{module} has no {function}()")
    return func


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {message}", file=sys.stderr)


def _axes(spec):
    if spec is None:
        return None
    out = []
    for name, start, stop, units in spec:
        try:
            out.append((name, float(start), float(stop), units))
        except ValueError:
            raise ParameterError(f"--axis {name}: START and STOP must be numbers, got "
                                 f"{start!r} {stop!r}") from None
    return out


def _dispatch(args) -> int:
    from .params import parse_pairs

    params = parse_pairs(args.param)
    if getattr(args, "hkl", None):
        from .io.window import parse_hkl
        params["hkl"] = " ".join(f"{v:g}" for v in parse_hkl(" ".join(args.hkl)))
    if args.seed < 0:
        raise ParameterError(f"--seed must be >= 0, got {args.seed}")
    if args.command == "reconstruct":
        from .pipeline import reconstruct_file

        rec = reconstruct_file(args.input, args.out, params, seed=args.seed, force=args.force,
                               progress=not args.no_progress,
                               checkpoint=not args.no_checkpoint, data_path=args.data,
                               axes=_axes(args.axis), out_of_plane=args.out_of_plane,
                               scan=args.scan)
        period = getattr(rec.patterns, "period_nm", float("nan"))
        print(f"wrote {args.out}: supercell {period:.3g} nm period, "
              f"{len(rec.phasing.start_indices)} starts, {rec.wall_time_s:.1f} s")
        if rec.trust is not None:  # the verdict last: what a user reads first
            print(f"estimated error {rec.trust.estimated_error:.3f} "
                  f"({rec.trust.reliable_reason})")
        return 0
    if args.command == "check":
        import json

        from .io.describe import describe_file, format_description
        from .params import validate

        full = validate(params)
        described = describe_file(args.input, data_path=args.data, axes=_axes(args.axis),
                                  unit_cell=full["unit_cell"] or None,
                                  out_of_plane=args.out_of_plane, hkl=full["hkl"] or None,
                                  window_rlu=full["window_rlu"], reduce=full["reduce"],
                                  scan=args.scan)
        print(json.dumps(described) if args.json else format_description(described))
        return 0
    if args.command == "run":
        run_report = _delegate("report", "run_report")
        run_report(input_path=args.input, out_dir=args.out, params=params, seed=args.seed,
                   force=args.force)
        return 0
    if args.command == "series":
        run_series = _delegate("series", "run_series")
        run_series(input_path=list(args.input), out_dir=args.out, params=params,
                   seed=args.seed, force=args.force, scheduler=args.scheduler)
        return 0
    build_parser().print_help(sys.stderr)
    return EXIT_USER_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``nanotools``; returns the exit status."""
    def on_sigterm(signum, frame):
        raise _Terminated()

    previous = None
    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (called from a test or a worker)
        pass
    old_show = warnings.showwarning
    warnings.showwarning = _show_warning
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except NanotoolsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted; finished starts are kept in the checkpoint, run the same "
              "command again to resume", file=sys.stderr)
        return 130
    except _Terminated:
        print("error: terminated; finished starts are kept in the checkpoint, run the same "
              "command again to resume", file=sys.stderr)
        return 143
    finally:
        warnings.showwarning = old_show
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
