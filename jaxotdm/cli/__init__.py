"""The ``jaxotdm`` command line. Each command lives in its own module exposing ``register(subparsers)``.

``jaxotdm --help`` and ``jaxotdm COMMAND --help`` must stay fast: nothing on the help path imports jax.
So command modules import jax and the numerical modules inside their run functions only, and the
compilation cache is configured after the command line is parsed. Every option's help shows its default.

Progress bars and logging live here, never in the numerical modules. Run as a program (``jaxotdm ...``
or ``python -m jaxotdm ...``), it turns on JAX's persistent compilation cache in ``~/.cache/jaxotdm/xla``
(``$JAXOTDM_CACHE_DIR`` overrides the folder, an empty value disables it); see
:func:`jaxotdm.cli._common.configure_compilation_cache`.

Exit status: 0 success; 1 the command ran but its check failed (``flow``: the ODE solver; ``train``: a
non-finite loss); 2 a refused option or input, an output folder in use by another process, a corrupt
model folder; 3 an I/O error during the work (disk full, read-only folder: one line naming the file;
``--debug`` shows the traceback); 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import re
import sys

__all__ = ["COMMANDS", "main", "build_parser", "EXIT_USAGE", "EXIT_IO", "EXIT_INTERRUPTED"]


COMMANDS = ("verify", "flow", "train", "sample", "generate")
"""The subcommands: module ``jaxotdm.cli.<name>`` has ``register(subparsers)``, which adds ``<name>``."""


def _command_modules(only: str | None = None) -> list:
    """The command modules to register: just ``only`` when it names a command, else all of them."""
    names = (only,) if only in COMMANDS else COMMANDS
    return [importlib.import_module(f"jaxotdm.cli.{name}") for name in names]


_STATES_DEFAULT = re.compile(r"\(default[ :]", re.I)  # help that already states its default, e.g. "(default 10; ...)"


def _has_default(action: argparse.Action) -> bool:
    default = action.default
    return not (default is None or default is argparse.SUPPRESS or (action.nargs == 0 and default is False))


def _plain(text: str) -> str:
    """Help text without reStructuredText markup: ``code`` becomes code, :func:`name` becomes name."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", text)
    return text.replace("``", "")


class _ShowDefaults:
    """Formatter mix-in: every option's help ends with ``(default: ...)`` unless it already says it, and no
    help text shows reStructuredText markup (module docstrings serve as descriptions).

    Options whose default is ``None``, a suppressed default, or ``False`` for a flag show nothing extra;
    an option without help text gets the default alone.
    """

    def _format_text(self, text: str) -> str:  # descriptions and epilogs (often a module docstring)
        return super()._format_text(_plain(text))

    def _expand_help(self, action: argparse.Action) -> str:
        return _plain(super()._expand_help(action))

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help
        if not text or "%(default)" in text or _STATES_DEFAULT.search(text) or not _has_default(action):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            return f"{text} (default: %(default)s)"
        return text

    def _format_action(self, action: argparse.Action) -> str:
        if action.help is None and action.option_strings and _has_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)


class _HelpFormatter(_ShowDefaults, argparse.HelpFormatter):
    pass


class _Parser(argparse.ArgumentParser):
    """``ArgumentParser`` whose help shows defaults, whatever formatter a subcommand asks for."""

    def __init__(self, *args, formatter_class: type[argparse.HelpFormatter] = _HelpFormatter, **kwargs):
        if not issubclass(formatter_class, _ShowDefaults):
            formatter_class = type(f"ShowDefaults{formatter_class.__name__}", (_ShowDefaults, formatter_class), {})
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``jaxotdm`` parser (building it imports no jax).

    Args:
        command: register only this subcommand (what ``jaxotdm COMMAND ...`` needs); ``None`` or an
            unknown name registers all of them.
    """
    parser = _Parser(
        prog="jaxotdm",
        description="Optimal transport and diffusion models in JAX: checks of arXiv 2410.13431.",
    )
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in _command_modules(command):
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs the CLI. With ``argv=None`` (the program's own command line) it also enables the persistent
    compilation cache; called from Python with an explicit ``argv`` it leaves JAX's global config alone."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    first = arguments[0] if arguments and not arguments[0].startswith("-") else None
    parser = build_parser(first)
    args = parser.parse_args(arguments)  # --help prints and exits here
    if args.command is None:
        parser.print_help()
        return 2
    if argv is None:  # after parsing, so that --help never imports jax
        from jaxotdm.cli._common import configure_compilation_cache

        configure_compilation_cache()
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:
        if args.debug:
            raise
        print(f"jaxotdm {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if args.debug:
            raise
        where = exc.filename if exc.filename is not None else "a file"
        print(f"jaxotdm {args.command}: error: cannot write or read {str(where)!r}: {exc.strerror or exc} "
              "(--debug shows the traceback).", file=sys.stderr)
        return EXIT_IO
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"jaxotdm {args.command}: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


EXIT_USAGE = 2
"""Exit status of a refused option or input (one line naming the option, before any work), of an output
folder in use by another process, and of a corrupt model folder or checkpoint."""
EXIT_IO = 3
"""Exit status of an I/O error during the work (disk full, a folder made read-only): one line naming the file."""
EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (``train`` writes a checkpoint first)."""
