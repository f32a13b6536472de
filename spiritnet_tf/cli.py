"""The ``spiritnet`` command line: one entry point, one module per subcommand.

Each module in :data:`SUBCOMMAND_MODULES` exposes ``add_parser(subparsers)``,
which adds its subcommand and sets ``func`` (called with the parsed arguments;
returns an exit status or None) as a parser default. To add a subcommand
(``animate``, ``train``, ``evaluate``, ``serve``, ``predict``), write such a module
and list it here.
"""

import argparse
import importlib
import sys

__all__ = ["main", "build_parser", "SUBCOMMAND_MODULES"]

SUBCOMMAND_MODULES = (
    "spiritnet_tf.animate_cli",
    "spiritnet_tf.data.cli",
    "spiritnet_tf.evaluation.depth_cli",
    "spiritnet_tf.serving.cli",
    "spiritnet_tf.training.cli",
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="spiritnet", description="SpiritNet: turn one still photo into a short animation.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv=None):
    """Runs the command line; returns the exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
    except (ValueError, OSError) as e:  # user errors: a message, not a traceback
        print(f"spiritnet {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
