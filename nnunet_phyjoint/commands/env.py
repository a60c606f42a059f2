"""`phyjoint env [WORKDIR]`: print the shell lines that point nnU-Net at a work folder and at our trainers."""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path


def trainers_dir() -> Path:
    """The folder of thin trainer modules that ``nnUNet_extTrainer`` must name."""
    import nnunet_phyjoint

    here = Path(nnunet_phyjoint.__file__).resolve().parent
    for candidate in (here.parent / "trainers", here / "_trainers"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"cannot find the trainers/ folder next to {here}")


def env_lines(workdir: Path) -> list[str]:
    workdir = workdir.resolve()
    ext = str(trainers_dir())
    existing = [p for p in os.environ.get("nnUNet_extTrainer", "").split(os.pathsep) if p and p != ext]
    lines = [
        f"export nnUNet_raw={shlex.quote(str(workdir / 'nnUNet_raw'))}",
        f"export nnUNet_preprocessed={shlex.quote(str(workdir / 'nnUNet_preprocessed'))}",
        f"export nnUNet_results={shlex.quote(str(workdir / 'nnUNet_results'))}",
        f"export nnUNet_extTrainer={shlex.quote(os.pathsep.join([ext, *existing]))}",
    ]
    return lines


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
