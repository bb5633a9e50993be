"""The ``jaxotdm`` command line. Each command lives in its own module exposing ``register(subparsers)``.

Progress bars and logging live here, never in the numerical modules.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def _command_modules():
    from jaxotdm.cli import flow as flow_cmd

    modules = [flow_cmd]
    for name in ("verify", "train", "sample"):
        try:
            modules.append(__import__(f"jaxotdm.cli.{name}", fromlist=["register"]))
        except ModuleNotFoundError as exc:
            if exc.name != f"jaxotdm.cli.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxotdm",
        description="Optimal transport and diffusion models in JAX: checks of arXiv 2410.13431.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        print(f"jaxotdm {args.command}: error: {exc}", file=sys.stderr)
        return 2
