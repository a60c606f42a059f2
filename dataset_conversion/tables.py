"""Metadata tables (CSV with or without a BOM, ``;`` or ``,``; Excel via openpyxl) as rows of named cells."""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from dataset_conversion.problems import ConversionError


def column_key(name: object) -> str:
    """Comparable column name: ``' Image_filename'`` and ``'image filename'`` -> ``'image_filename'``."""
    return re.sub(r"[\s_]+", "_", str(name or "").strip().lower().lstrip("\ufeff"))


def cell_text(value: object) -> str:
    """A cell as text; Excel's integral floats (``12.0``) as integers."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (row number in the file, 1-based; cells by column key)


def _csv_rows(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")  # spreadsheet exports from Windows
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=";,\t")
        delimiter = dialect.delimiter
    except csv.Error:
        delimiter = ","
    return [[c.strip() for c in row] for row in csv.reader(text.splitlines(), delimiter=delimiter, skipinitialspace=True)]


def _xlsx_sheets(path: Path) -> list[list[list[str]]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several unrelated types for damaged files
        raise ConversionError(f"{path}: cannot read the Excel file ({e})") from None
    try:
        return [[[cell_text(v) for v in row] for row in ws.iter_rows(values_only=True)] for ws in wb.worksheets]
    finally:
        wb.close()


def read_rows(path: Path) -> list[list[list[str]]]:
    """The sheets of ``path`` (a CSV has one), each a list of rows of cell texts."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"metadata file {path} not found")
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _xlsx_sheets(path)
    return [_csv_rows(path)]


def read_table(path: Path, required: Iterable[str], header_search_rows: int = 10) -> Table:
    """The first sheet of ``path`` with a header row holding every ``required`` column (keys as :func:`column_key`)."""
    required = [column_key(r) for r in required]
    best_missing: list[str] = required
    for sheet in read_rows(path):
        for h, header in enumerate(sheet[:header_search_rows]):
            keys = [column_key(c) for c in header]
            missing = [r for r in required if r not in keys]
            if missing:
                best_missing = min(best_missing, missing, key=len)
                continue
            rows = []
            for n, row in enumerate(sheet[h + 1:], start=h + 2):
                if not any(c for c in row):
                    continue
                rows.append((n, {k: (row[i] if i < len(row) else "") for i, k in enumerate(keys) if k}))
            return Table(Path(path), keys, rows)
    raise ConversionError(f"{path}: no header row with the columns {', '.join(required)} "
                          f"(missing: {', '.join(best_missing)})")
