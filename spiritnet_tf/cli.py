"""The ``spiritnet`` command line: one entry point, one module per subcommand.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``add_parser(subparsers)``,
which adds its subcommand(s) and sets ``func`` (called with the parsed arguments;
returns an exit status or None) as a parser default. To add a subcommand
(``animate``, ``train``, ``evaluate``, ``evaluate-depth``, ``serve``, ``predict``,
``ui``), write such a module,
list it here and name its commands in :data:`COMMANDS`.

Quick answers: `main` imports only the module of the command typed, so
``spiritnet --help``, ``spiritnet animate --help`` and argument errors answer
without importing TensorFlow (``serve`` and ``predict`` too: the serving package loads
its client and server on first use).

Quiet by default: TensorFlow's C++ logging is switched off (``TF_CPP_MIN_LOG_LEVEL``
before TensorFlow is imported), the lines its libraries print while they load,
before that setting takes effect, are filtered out of stderr, and TensorFlow's and
Keras's Python loggers and warnings show errors only. ``--verbose`` (before or after
the command) keeps all of it.

Termination: SIGTERM is turned into an exception in the main thread, as Ctrl-C
(SIGINT) is, so the writers' clean-up runs: no partial file is left and an
existing output is kept (exit status 143; 130 for Ctrl-C).

Exit: `run` (the ``spiritnet`` script) ends the process of a command in
:data:`FAST_EXIT_COMMANDS` at once when `main` returns, without the interpreter's
teardown of TensorFlow.
"""

import argparse
import importlib
import importlib.abc
import importlib.util
import logging
import math
import os
import re
import signal
import sys
import tempfile
import warnings

__all__ = ["main", "run", "FAST_EXIT_COMMANDS", "UNUSED_MODULES", "build_parser", "SUBCOMMAND_MODULES", "COMMANDS",
           "TF_LOG_LINE", "quiet_tensorflow", "Terminated", "add_command", "folder_script"]

SUBCOMMAND_MODULES = (
    "spiritnet_tf.animate_cli",
    "spiritnet_tf.data.cli",
    "spiritnet_tf.evaluation.depth_cli",
    "spiritnet_tf.serving.cli",
    "spiritnet_tf.training.cli",
    "spiritnet_tf.ui",
)

# command -> (its module, the one-line help of `spiritnet --help`, which each module's
# add_parser gives its command through `add_command`).
COMMANDS = {
    "animate": ("spiritnet_tf.animate_cli", "turn photos into short animations"),
    "data": ("spiritnet_tf.data.cli", "prepare training data"),
    "serve": ("spiritnet_tf.serving.cli",
              "serve an exported SavedModel over gRPC (TF Serving's PredictionService)"),
    "predict": ("spiritnet_tf.serving.cli", "animate a photo through a running PredictionService"),
    "train": ("spiritnet_tf.training.cli", "train SpiritNet from an experiment file"),
    "evaluate": ("spiritnet_tf.training.cli",
                 "evaluate a model and the baselines on held-out data"),
    "evaluate-depth": ("spiritnet_tf.evaluation.depth_cli",
                       "score a model's inverse depth on real scenes with depth"),
    "ui": ("spiritnet_tf.ui",
           "open a local web page to paint what stays still and animate a photo"),
}

# Commands whose work is complete when `main` returns (every output written, closed and
# renamed into place, ffmpeg waited for): `run` ends their process with os._exit. The
# interpreter's own exit spends 0.7-0.9 s tearing down the modules TensorFlow imported
# (docs/benchmarks.md, "The interpreter's exit"); commands that may leave buffered
# writers to their finalizers (train's summaries, servers) exit normally.
FAST_EXIT_COMMANDS = ("animate",)

# Modules that `run` keeps out of the process of a FAST_EXIT_COMMANDS command: their
# code never uses them, and importing Keras loads them when they are installed. pandas:
# Keras imports it only to recognise DataFrames (0.37 s of every `import keras` where
# the `ui` extra installed it: docs/benchmarks.md, "A single model's command line");
# blocked, Keras's ``try: import pandas`` finds none.
UNUSED_MODULES = ("pandas",)

# A line of TensorFlow's (absl / TSL) C++ logging, e.g.
# "I0000 00:00:1796055912.276541    4320 port.cc:153] oneDNN custom operations are on. ..."
# and the lines printed around them while the libraries load.
TF_LOG_LINE = re.compile(
    r"^(?:[IWEF]\d{4} [\d:.]+\s+\d+ [\w.\-/]+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate "
    r"compiler flags\.)"
)
_QUIET_MODULES = r"(tensorflow|keras|tf_keras|absl|tensorflow_datasets|tf2onnx|google)(\.|$)"


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM (see `main`)."""


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: let the clean-up finish
    raise Terminated()


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with file descriptor 2 sent to a file.

    The C++ libraries print a few lines while they load, before their log level is
    read; afterwards every stderr line that is not such a log line is written back.
    """

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        sys.stderr.flush()
        saved = os.dup(2)
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                self.loader.exec_module(module)
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                os.close(saved)
                captured.seek(0)
                kept = [line for line in captured.read().decode(errors="replace").splitlines(True)
                        if not TF_LOG_LINE.match(line)]
                if kept:
                    sys.stderr.write("".join(kept))
                    sys.stderr.flush()
        _quiet_python_loggers()

    def __getattr__(self, name):  # anything else (get_resource_reader, ...) as the real one
        return getattr(self.loader, name)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Wraps the loader of the top-level ``tensorflow`` package in `_QuietLoader`, once."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def _quiet_python_loggers():
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:  # pragma: no cover - absl comes with TensorFlow
        pass


def quiet_tensorflow():
    """Silences TensorFlow's logs for this process (see the module docstring).

    Call before TensorFlow is imported to hide its C++ start-up lines too; calling it
    afterwards quiets the Python loggers only.
    """
    warnings.filterwarnings("ignore", module=_QUIET_MODULES)
    if "tensorflow" in sys.modules:
        _quiet_python_loggers()
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # also over a shell's 2, which shows errors
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    if not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


def ranged(kind, low=None, high=None, *, open_low=False):
    """An argparse type: a finite int or float within [low, high] ((low, high] if open_low);
    the one number rule of every subcommand's options ("expected a whole number >= 1 and
    <= 100, got '0'")."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        ok = value is not None and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if open_low else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            what = "a whole number" if kind is int else "a finite number"
            bounds = [f"{'>' if open_low else '>='} {low:g}" if low is not None else None,
                      f"<= {high:g}" if high is not None else None]
            what += "".join(f" {b}" if i == 0 or not bounds[0] else f" and {b}"
                            for i, b in enumerate(bounds) if b)
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in "invalid int value"
    return parse


def add_command(subparsers, name, description, **kwargs):
    """The parser of command ``name`` with its one-line help from `COMMANDS` (its one owner)
    and ``description`` (the text of ``spiritnet NAME --help``)."""
    return subparsers.add_parser(name, help=COMMANDS[name][1], description=description, **kwargs)


def folder_script(build, usage, what, argv=None):
    """The ``python -m`` entry of a module that builds a folder from a source folder:
    ``build(SRC, OUT)`` with the two arguments of ``argv`` (default ``sys.argv[1:]``; else
    exits with ``usage: <usage>``), then prints how many ``what`` (a noun) it wrote."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) != 2:
        sys.exit(f"usage: {usage}")
    names = build(*argv)
    print(f"{len(names)} {what}(s) written to {argv[1]}")


def _command(argv):
    """The command word of argv (the first argument that is not an option), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(commands=None):
    """The argument parser; ``commands``: the command names whose modules are imported
    (None: all). The others are listed by name and help only."""
    parser = argparse.ArgumentParser(
        prog="spiritnet", description="SpiritNet: turn one still photo into a short animation.")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's own log messages (hidden by default)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = COMMANDS if commands is None else [c for c in commands if c in COMMANDS]
    for module in dict.fromkeys(COMMANDS[c][0] for c in wanted):
        importlib.import_module(module).add_parser(subparsers)
    for name, (_, text) in COMMANDS.items():
        if name not in subparsers.choices:
            subparsers.add_parser(name, help=text)
    _add_verbose(subparsers)
    return parser


def _add_verbose(subparsers):
    for sub in subparsers.choices.values():
        if not any("--verbose" in a.option_strings for a in sub._actions):
            sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="show TensorFlow's own log messages (hidden by default)")
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_verbose(action)


def main(argv=None):
    """Runs the command line; returns the exit status (0 on success)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--verbose" not in argv:  # before the parser: some command modules import TensorFlow
        quiet_tensorflow()
    args = build_parser([_command(argv)]).parse_args(argv)
    previous = None
    if hasattr(signal, "SIGTERM"):
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread: leave signals alone
            previous = None
    try:
        status = args.func(args)
    except (ValueError, OSError) as e:  # user errors: a message, not a traceback
        print(f"spiritnet {args.command}: error: {e}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"spiritnet {args.command}: terminated; nothing half-written was kept",
              file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return int(status or 0)


def run():
    """The ``spiritnet`` console script (setup.cfg) and ``python -m spiritnet_tf.cli``:
    `main` on ``sys.argv``, then the process exits with its status. After a command of
    `FAST_EXIT_COMMANDS` the logging handlers and the standard streams are flushed and the
    process ends at once (``os._exit``): nothing of it is left to write, and the
    interpreter's teardown of TensorFlow would only cost time; `UNUSED_MODULES` are kept
    out of such a process."""
    argv = sys.argv[1:]
    fast = _command(argv) in FAST_EXIT_COMMANDS
    if fast:
        for name in UNUSED_MODULES:
            sys.modules.setdefault(name, None)  # `import name` raises ImportError
    status = main(argv)
    if fast:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
                pass
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run()
