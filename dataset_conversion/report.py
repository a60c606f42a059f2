"""The conversion report: what was converted (per class, scanner, patient), duplicates, and what was left out."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable

from nnunet_phyjoint.metadata import CLASS_NAMES, CaseMeta

from dataset_conversion.problems import ProblemLog

REPORT_NAME = "conversion_report.json"


def build_report(
    *,
    dataset: str,
    source: str,
    source_folder: Path,
    cases: Iterable[CaseMeta],
    duplicate_groups: dict[str, list[str]],
    duplicate_threshold: int,
    log: ProblemLog,
) -> dict[str, Any]:
    """The JSON-ready report of one conversion."""
    cases = sorted(cases, key=lambda c: c.case_id)
    by_id = {c.case_id: c for c in cases}
    classes = Counter(c.label for c in cases)
    scanners = Counter(c.scanner for c in cases)
    patients = Counter(c.patient for c in cases)
    class_by_scanner: dict[str, dict[str, int]] = {}
    for c in cases:
        row = class_by_scanner.setdefault(c.scanner, {k: 0 for k in CLASS_NAMES})
        row[c.label] = row.get(c.label, 0) + 1
    groups = {
        g: {"cases": ids, "classes": sorted({by_id[i].label for i in ids}), "patients": sorted({by_id[i].patient for i in ids})}
        for g, ids in duplicate_groups.items()
    }
    return {
        "dataset": dataset,
        "source": source,
        "source_folder": str(Path(source_folder).resolve()),
        "num_cases": len(cases),
        "classes": {k: classes.get(k, 0) for k in (*CLASS_NAMES, *sorted(set(classes) - set(CLASS_NAMES)))},
        "scanners": dict(sorted(scanners.items())),
        "class_by_scanner": dict(sorted(class_by_scanner.items())),
        "num_patients": len(patients),
        "images_per_patient": dict(sorted(patients.items())),
        "doppler": [c.case_id for c in cases if c.doppler],
        "duplicates": {
            "method": "imagehash.phash (64 bits)",
            "max_hamming_distance": duplicate_threshold,
            "num_groups": len(groups),
            "num_cases_in_groups": sum(len(g["cases"]) for g in groups.values()),
            "groups": groups,
        },
        "skipped": [p.to_json() for p in log.skipped],
        "warnings": [p.to_json() for p in log.warnings],
        "ignored": [p.to_json() for p in log.ignored],
    }


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items())


def summary_text(report: dict[str, Any]) -> str:
    """A readable summary of :func:`build_report`'s result."""
    lines = [
        f"{report['dataset']}: {report['num_cases']} cases converted from {report['source']} ({report['source_folder']})",
        f"  classes:  {_counts(report['classes'])}",
        f"  scanners: {_counts(report['scanners'])}",
    ]
    per_patient = Counter(report["images_per_patient"].values())
    spread = ", ".join(f"{n} with {k} image{'s' if k > 1 else ''}" for k, n in sorted(per_patient.items()))
    lines.append(f"  patients: {report['num_patients']} ({spread})")
    if report["doppler"]:
        lines.append(f"  Doppler/colour images: {len(report['doppler'])} ({', '.join(report['doppler'][:10])}"
                     f"{', ...' if len(report['doppler']) > 10 else ''})")
    dup = report["duplicates"]
    lines.append(f"  near-duplicates (pHash distance <= {dup['max_hamming_distance']}): "
                 f"{dup['num_groups']} groups, {dup['num_cases_in_groups']} images")
    for name, g in dup["groups"].items():
        mixed = "  <- classes differ" if len(g["classes"]) > 1 else ""
        lines.append(f"    {name}: {', '.join(g['cases'])}{mixed}")
    for key in ("skipped", "warnings"):  # every one: these are what the user has to look at
        lines.append(f"  {key}: {len(report[key])}")
        lines.extend(f"    {p['file']}: {p['reason']}" for p in report[key])
    ignored = report["ignored"]
    lines.append(f"  ignored on purpose: {len(ignored)}")
    if len(ignored) <= 10:
        lines.extend(f"    {p['file']}: {p['reason']}" for p in ignored)
    else:  # e.g. hundreds of files outside a keep-list: count them, the JSON report lists each
        for reason, n in Counter(p["reason"] for p in ignored).most_common():
            lines.append(f"    {n} x {reason}")
    return "\n".join(lines)
