"""The `visualcnn` command: the window by default, and subcommands for scripts.

Every failure a user can cause ends as one line `error: ...` on stderr and a non-zero
exit, never a traceback. Subcommands import their heavy modules (numba, Qt) lazily so
`visualcnn summary` answers instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS = {
    "gui": ("visualcnn.commands.gui", "open the builder window (the default)"),
    "summary": ("visualcnn.commands.summary", "print a model file's Keras summary table"),
    "train": ("visualcnn.commands.train", "train a model file on MNIST, Fashion-MNIST or a folder of your images"),
    "evaluate": ("visualcnn.commands.evaluate", "evaluate a saved, trained model on its test set (MNIST unless --data or the file names another)"),
    "export": ("visualcnn.commands.export", "write a model as a Keras file or script, a PyTorch folder or ONNX"),
    "bench": ("visualcnn.commands.bench", "measure training and prediction speed"),
    "lesson": ("visualcnn.commands.lesson", "check lesson files, list the bundled lessons"),
}


class UsageError(Exception):
    """A problem the user can fix; printed as 'error: ...'."""


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line like every other error (not usage + message)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="visualcnn",
        description="Build a convolutional neural network by hand and watch it learn. "
                    "With no subcommand, opens the window (optionally with FILE).",
        epilog="Run 'visualcnn SUBCOMMAND --help' for a subcommand's options.",
    )
    parser.add_argument("--version", action="version", version=f"visualcnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module = _load(module_name)
        if module is not None:
            module.add_arguments(sub)
            sub.set_defaults(run=module.run)
        else:
            sub.set_defaults(run=_not_available(name))
    return parser


def _load(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # a subcommand a later release adds
        raise


def _not_available(name: str):
    def run(args) -> int:
        raise UsageError(f"'visualcnn {name}' is not available in this version")
    return run


TOP_LEVEL_OPTIONS = ("-h", "--help", "--version")

# Positional arguments that name a model file; a bare preset name (seed_cnn) also works.
MODEL_ARGUMENTS = ("file", "model", "saved")


def main(argv: list[str] | None = None) -> int:
    sys.unraisablehook = _unraisable
    try:
        code = _main(argv)
        if sys.stdout is not None:  # None when started with stdout closed (`>&-`)
            sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except KeyboardInterrupt:
        _report("error: interrupted")
        return 130
    except OSError as exc:  # the output itself failed, e.g. a redirect to a full disk
        _report(f"error: cannot write the output: {exc.strerror or _one_line(exc)}")
        _quiet_broken_pipe()  # nothing more to write there, not even at exit
        return 2


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `visualcnn FILE`, `visualcnn --quit-after 3` and bare `visualcnn` open the window.
    if not argv or (argv[0] not in SUBCOMMANDS and argv[0] not in TOP_LEVEL_OPTIONS):
        argv = ["gui", *argv]
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["gui"])
    try:
        from .resources import resolve_model_path

        for name in MODEL_ARGUMENTS:
            value = getattr(args, name, None)
            if value == "":
                raise UsageError("the model file name is empty: give a model file or a preset name such as seed_cnn")
            if isinstance(value, str):
                setattr(args, name, str(resolve_model_path(value)))
        return int(args.run(args) or 0)
    except BrokenPipeError:
        raise
    except (UsageError, ValueError, OSError) as exc:
        _report(f"error: {_one_line(exc)}")
        return 2
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - the promise is: never a traceback
        _report(f"error: unexpected {type(exc).__name__}: {_one_line(exc)} (please report this)")
        return 1


def _unraisable(unraisable) -> None:
    """A Ctrl-C that lands in a callback Python cannot raise from (llvmlite calls back into Python
    while numba compiles) is swallowed there with an "Exception ignored" traceback, and the run
    goes on. Honour it instead: the same one line and exit code as any other Ctrl-C."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        import os

        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        _report("error: interrupted")
        os._exit(130)
    sys.__unraisablehook__(unraisable)


def _report(line: str) -> None:
    """One line on stderr; a closed stderr (`2>&-`) must not turn an error into a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _quiet_broken_pipe() -> int:
    """`visualcnn summary FILE | head`: the reader left, which is not an error. Point stdout at
    devnull so the interpreter's final flush does not complain either."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
