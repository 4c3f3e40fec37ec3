"""The ``hwnas`` command line: argument parsing and the one place errors become exit codes.

Each command group lives in its own module exposing ``register(subparsers)``; a
command's handler takes the parsed arguments and returns an exit code. Data goes
to stdout, logs and progress to stderr.

Exit codes: 0 success, 1 device/runtime failure, 2 bad input.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from hwnas.errors import NO_SPACE, HwnasError

log = logging.getLogger("hwnas")

_GROUPS = ("devices", "measure", "profile", "lut", "predict", "costmodel", "search", "zoo", "demo")


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser with every command group registered."""
    import importlib

    parser = argparse.ArgumentParser(prog="hwnas", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in _GROUPS:
        try:
            module = importlib.import_module(f"hwnas.cli.{group}")
        except ModuleNotFoundError as exc:
            if exc.name == f"hwnas.cli.{group}":
                continue  # command group not built yet
            raise
        module.register(sub)
    return parser


def add_common(parser: argparse.ArgumentParser, json_flag: bool = True) -> None:
    """Add the options every command takes: ``--config`` and, where it prints results, ``--json``."""
    parser.add_argument("--config", default="hardware.yaml", metavar="PATH",
                        help="device registry (default: ./hardware.yaml)")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    if json_flag:
        parser.add_argument("--json", action="store_true", help="machine-readable output on stdout")



def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 device failure, 2 bad input)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad arguments, 0 on --help
        return int(exc.code or 0)
    debug = getattr(args, "debug", False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO,
                        format="%(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except HwnasError as exc:
        if debug:
            log.exception("hwnas: error")
        if not exc.reported:
            print(f"hwnas: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # stdout closed early (`hwnas ... --json | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0
    except OSError as exc:  # a full disk anywhere we write (ONNX cache, outputs): exit 1, one sentence
        if exc.errno not in NO_SPACE:
            raise
        if debug:
            log.exception("hwnas: error")
        print(f"hwnas: error: no space left on the device for {exc.filename or 'a file we write'}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("hwnas: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
