"""Command line: `toolhive-operator <command>`.

Each command is a small function that parses nothing itself: argparse hands it the namespace, it builds
`Settings` and calls into the package. Heavy imports happen inside the command that needs them, so
`toolhive-operator version` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

import toolhive

Command = Callable[[argparse.Namespace], int]


def _version(_: argparse.Namespace) -> int:
    print(toolhive.__version__)
    return 0


def _settings(_: argparse.Namespace) -> int:
    from toolhive import settings

    print(json.dumps(settings.Settings().model_dump(mode="json"), indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolhive-operator", description=toolhive.__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("version", help="print the version").set_defaults(func=_version)
    commands.add_parser("settings", help="print the effective settings as JSON").set_defaults(func=_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Command = args.func
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
