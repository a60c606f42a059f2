"""Input checks that run before any work: every file readable, decodable to the end, 2-D, one channel or convertible.

Used by ``phyjoint predict``, ``phyjoint ensemble`` and ``phyjoint convert images``. nnU-Net's own
readers crash a whole run on one bad file (an RGB PNG breaks its one-channel normalisation in a
worker, a truncated PNG fails without its name), so we look at every input first: a colour image is
converted to grey the way the converters convert training images, a bad file is named with the
reason and skipped, and ``--strict`` turns any skip into a stop before work starts.
"""
from __future__ import annotations

import re
import zipfile
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from dataset_conversion.imaging import grey_pixels, open_image
from dataset_conversion.problems import CaseProblem, Problem

OK, CONVERT, SKIP = "ok", "convert", "skip"
EXIT_SKIPPED = 3  # exit status of a run that skipped some inputs and did the rest

# PIL modes that nnU-Net's NaturalImage2DIO reads as one channel; other modes are converted to grey
SINGLE_CHANNEL_MODES = frozenset({"1", "L", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"})
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class FileCheck:
    """What the check found for one image file."""

    path: Path
    status: str  # OK, CONVERT or SKIP
    reason: str = ""  # why it is skipped, or which conversion it gets
    size: tuple[int, int] | None = None  # (width, height)


def check_image(path: Path | str) -> FileCheck:
    """Open and fully decode ``path``; say whether it is used as is, converted to grey, or skipped (and why)."""
    path = Path(path)
    try:
        im = open_image(path)  # decodes to the end: a truncated file fails here
    except CaseProblem as p:
        return FileCheck(path, SKIP, p.reason)
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        return FileCheck(path, SKIP, f"not a 2-D image: {frames} frames/pages", im.size)
    if im.width < 1 or im.height < 1:
        return FileCheck(path, SKIP, f"empty image ({im.width}x{im.height})", im.size)
    if im.mode in SINGLE_CHANNEL_MODES:
        return FileCheck(path, OK, size=im.size)
    try:
        grey_pixels(im, path)
    except CaseProblem as p:
        return FileCheck(path, SKIP, p.reason, im.size)
    return FileCheck(path, CONVERT, f"{im.mode} image converted to grey (as the converters do)", im.size)


@dataclass
class CaseCheck:
    """One prediction case: its channel files in channel order; ``problem`` set when it is skipped."""

    case_id: str
    files: list[FileCheck]
    problem: Problem | None = None


@dataclass
class InputReport:
    """The outcome of checking a set of inputs: usable cases, conversions, skips."""

    source: Path
    cases: list[CaseCheck] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)  # every skip, cases and stray files alike

    @property
    def usable(self) -> list[CaseCheck]:
        return [c for c in self.cases if c.problem is None]

    @property
    def converted(self) -> list[FileCheck]:
        return [f for c in self.usable for f in c.files if f.status == CONVERT]

    @property
    def needs_staging(self) -> bool:
        """True when the tool must not read ``source`` as it is (something skipped or converted)."""
        return bool(self.skipped or self.converted)


def check_files(paths: Iterable[Path | str], root: Path | str | None = None) -> InputReport:
    """Check single images, one case each (case id = file name)."""
    report = InputReport(Path(root) if root is not None else Path("."))
    for p in paths:
        check = check_image(p)
        case = CaseCheck(Path(p).name, [check])
        if check.status == SKIP:
            case.problem = Problem(_rel(check.path, report.source), check.reason)
            report.skipped.append(case.problem)
        report.cases.append(case)
    return report


def check_prediction_folder(folder: Path | str, file_ending: str = ".png", num_channels: int = 1) -> InputReport:
    """Check every file that ``nnUNetv2_predict -i folder`` would read (``CASE_XXXX<ending>``, XXXX = channel)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"input folder {folder} does not exist or is not a folder")
    report = InputReport(folder)
    by_case: dict[str, dict[int, Path]] = defaultdict(dict)
    # the same selection as nnU-Net's subfiles(folder, suffix=file_ending): hidden files included
    for p in sorted(folder.iterdir()):
        if not (p.is_file() and p.name.endswith(file_ending)):
            continue
        m = _CHANNEL.match(p.name[:-len(file_ending)])
        if m is None:
            report.skipped.append(Problem(p.name, f"not named CASE_XXXX{file_ending} (XXXX: 4-digit channel number)"))
        else:
            by_case[m["case"]][int(m["channel"])] = p
    if not by_case and not report.skipped:
        raise FileNotFoundError(f"no *{file_ending} files in {folder}")
    for case_id, channels in sorted(by_case.items()):
        case = CaseCheck(case_id, [check_image(channels[c]) for c in sorted(channels)])
        case.problem = _case_problem(case, channels, file_ending, num_channels)
        if case.problem is not None:
            report.skipped.append(case.problem)
        report.cases.append(case)
    return report


def _case_problem(case: CaseCheck, channels: dict[int, Path], ending: str, num_channels: int) -> Problem | None:
    wanted = set(range(num_channels))
    missing = sorted(wanted - set(channels))
    if missing:
        names = ", ".join(f"{case.case_id}_{c:04d}{ending}" for c in missing)
        return Problem(case.case_id, f"missing channel file(s) {names} (the model takes {num_channels})")
    extra = sorted(set(channels) - wanted)
    if extra:
        names = ", ".join(channels[c].name for c in extra)
        return Problem(case.case_id, f"unexpected channel file(s) {names} (the model takes {num_channels})")
    for f in case.files:
        if f.status == SKIP:
            return Problem(f.path.name, f.reason)
    if len({f.size for f in case.files}) > 1:
        sizes = ", ".join(f"{f.path.name} {f.size[0]}x{f.size[1]}" for f in case.files)
        return Problem(case.case_id, f"channel images differ in size ({sizes})")
    return None


def check_ensemble_folders(folders: Sequence[Path | str], classification_file: str = "classification.csv"
                           ) -> InputReport:
    """Check what ``phyjoint ensemble`` reads: per case, ``CASE.npz`` (decodable) + ``CASE.pkl`` in every folder,
    equal probability shapes, and a row in every folder's ``classification_file``.

    Folder-level problems (no folder, no ``dataset.json``/``plans.json`` in the first, no
    classification file) raise ``FileNotFoundError``: no case could be ensembled without them.
    """
    from nnunet_phyjoint.evaluation.io import read_classification_csv

    folders = [Path(f) for f in folders]
    for f in folders:
        if not f.is_dir():
            raise FileNotFoundError(f"prediction folder {f} does not exist or is not a folder")
        if not (f / classification_file).is_file():
            raise FileNotFoundError(f"{f / classification_file} is missing: predict with `phyjoint predict` "
                                    "to get class probabilities")
    for name in ("dataset.json", "plans.json"):
        if not (folders[0] / name).is_file():
            raise FileNotFoundError(f"{folders[0] / name} is missing (nnU-Net's predict writes it beside the masks)")
    tables = [read_classification_csv(f / classification_file) for f in folders]
    report = InputReport(folders[0])
    cases = sorted({p.name[:-4] for f in folders for p in f.glob("*.npz")})
    for case_id in cases:
        case = CaseCheck(case_id, [])
        case.problem = _ensemble_case_problem(case_id, folders, tables)
        if case.problem is not None:
            report.skipped.append(case.problem)
        report.cases.append(case)
    return report


def _ensemble_case_problem(case_id: str, folders: list[Path], tables: list[dict]) -> Problem | None:
    import numpy as np

    shapes = []
    for folder, table in zip(folders, tables):
        for suffix in (".npz", ".pkl"):
            if not (folder / f"{case_id}{suffix}").is_file():
                return Problem(case_id, f"{case_id}{suffix} missing in {folder}")
        if case_id not in table:
            return Problem(case_id, f"no row in {folder / 'classification.csv'}")
        path = folder / f"{case_id}.npz"
        try:
            with np.load(path) as z:
                shapes.append(z["probabilities"].shape)  # reads to the end: zip CRCs catch damage
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            return Problem(str(path), f"unreadable probabilities ({type(e).__name__}: {e})")
    if len(set(shapes)) > 1:
        return Problem(case_id, f"probability shapes differ between folders: {shapes}")
    return None


def log_checks(report: InputReport, log: Callable[[str], None] = print) -> None:
    """One line per converted and per skipped input, as they are found (before any work)."""
    for f in report.converted:
        log(f"[input check] {_rel(f.path, report.source)}: {f.reason}")
    for p in report.skipped:
        log(f"[input check] skipping {p}")


def summary(report: InputReport, done: str = "predicted") -> str:
    """The end-of-run summary: how many cases were done, which were converted, which skipped and why."""
    n = len(report.usable)
    lines = [f"input summary ({report.source}): {n} case{'s' * (n != 1)} {done}, "
             f"{len(report.converted)} converted to grey, {len(report.skipped)} skipped"]
    lines += [f"  converted: {_rel(f.path, report.source)}" for f in report.converted]
    lines += [f"  skipped:   {p}" for p in report.skipped]
    return "\n".join(lines)


def strict_error(report: InputReport, command: str) -> str:
    """The message of a ``--strict`` stop: every problem found, and that nothing was done."""
    problems = "\n".join(f"  {p}" for p in report.skipped)
    return (f"{command}: error: {len(report.skipped)} input problem(s) in {report.source} "
            f"(--strict: stopping before any work):\n{problems}")


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
