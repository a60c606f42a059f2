"""`phyjoint` console script: sub-commands are discovered in :mod:`nnunet_phyjoint.commands`."""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from nnunet_phyjoint import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phyjoint",
        description="PhyJointNet for nnU-Net v2: joint breast-ultrasound segmentation and diagnosis.",
    )
    parser.add_argument("--version", action="version", version=f"nnunet-phyjoint {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    result = args.func(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
