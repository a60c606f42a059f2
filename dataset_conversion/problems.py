"""Bad input: every problem names a file; by default the case is skipped and reported, in strict mode it is fatal."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path


class ConversionError(Exception):
    """A problem that stops the conversion (strict mode, an empty source, a refused target folder...)."""


@dataclass(frozen=True)
class Problem:
    """One file that could not be used, and why."""

    file: str  # relative to the source folder where possible
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.reason}"

    def to_json(self) -> dict[str, str]:
        return asdict(self)


class ProblemLog:
    """Collects skipped files (problems), warnings and deliberately ignored files.

    ``skip`` raises :class:`ConversionError` when ``strict`` is set, so one call site serves both modes.
    """

    def __init__(self, source_root: Path, strict: bool = False):
        self.source_root = Path(source_root)
        self.strict = strict
        self.skipped: list[Problem] = []
        self.warnings: list[Problem] = []
        self.ignored: list[Problem] = []

    def rel(self, path: Path | str) -> str:
        """``path`` relative to the source folder (posix), or as given when it lies elsewhere."""
        p = Path(path)
        try:
            return p.resolve().relative_to(self.source_root.resolve()).as_posix()
        except ValueError:
            return str(p)

    def skip(self, path: Path | str, reason: str) -> None:
        """Record a file that cannot be converted; fatal in strict mode."""
        problem = Problem(self.rel(path), reason)
        if self.strict:
            raise ConversionError(f"{self.source_root / problem.file}: {reason} (strict mode: stopping)")
        self.skipped.append(problem)

    def warn(self, path: Path | str, reason: str) -> None:
        """Something odd that does not stop the case from being converted."""
        self.warnings.append(Problem(self.rel(path), reason))

    def ignore(self, path: Path | str, reason: str) -> None:
        """A file left out on purpose (not an image of the dataset, excluded by a keep-list...)."""
        self.ignored.append(Problem(self.rel(path), reason))


class CaseProblem(Exception):
    """Raised while reading one case: the case is skipped (or the run stops in strict mode)."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason
