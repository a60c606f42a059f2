"""`phyjoint env [WORKDIR]`: print the shell lines that point nnU-Net at a work folder and at our trainers."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from nnunet_phyjoint.paths import ext_trainer_value, trainers_dir

__all__ = ["env_lines", "register", "trainers_dir"]  # trainers_dir: imported from here by the benchmark runner


def env_lines(workdir: Path) -> list[str]:
    """``export`` lines for nnU-Net's three folders under ``workdir`` and for ``nnUNet_extTrainer``."""
    workdir = workdir.resolve()
    return [
        f"export nnUNet_raw={shlex.quote(str(workdir / 'nnUNet_raw'))}",
        f"export nnUNet_preprocessed={shlex.quote(str(workdir / 'nnUNet_preprocessed'))}",
        f"export nnUNet_results={shlex.quote(str(workdir / 'nnUNet_results'))}",
        f"export nnUNet_extTrainer={shlex.quote(ext_trainer_value())}",
    ]


def _run(args: argparse.Namespace) -> int:
    for line in env_lines(Path(args.workdir)):
        print(line)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("env", help="print shell lines that set nnU-Net's folders and nnUNet_extTrainer",
                       description="Usage: eval \"$(phyjoint env WORKDIR)\"")
    p.add_argument("workdir", nargs="?", default=os.environ.get("PHYJOINT_WORKDIR", "phyjoint_work"),
                   help="folder that holds nnUNet_raw, nnUNet_preprocessed and nnUNet_results")
    p.set_defaults(func=_run)
