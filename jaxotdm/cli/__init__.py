"""The ``jaxotdm`` command line. Each command lives in its own module exposing ``register(subparsers)``.

Progress bars and logging live here, never in the numerical modules. Run as a program (``jaxotdm ...``
or ``python -m jaxotdm ...``), it turns on JAX's persistent compilation cache in ``~/.cache/jaxotdm/xla``
(``$JAXOTDM_CACHE_DIR`` overrides the folder, an empty value disables it); see
:func:`jaxotdm.cli._common.configure_compilation_cache`.
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
    """Runs the CLI. With ``argv=None`` (the program's own command line) it also enables the persistent
    compilation cache; called from Python with an explicit ``argv`` it leaves JAX's global config alone."""
    if argv is None:
        from jaxotdm.cli._common import configure_compilation_cache

        configure_compilation_cache()
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
