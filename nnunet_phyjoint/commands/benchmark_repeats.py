"""`phyjoint benchmark-repeats OUT1 OUT2 ... -o FILE.md`: independent runs of one benchmark side by side.

Give the output folders of the same `phyjoint benchmark` command run with `--repeat 1`, `--repeat 2`, ...
(cross-validation or `--leave-one-scanner-out`). Writes FILE.md (per metric: each run, mean, spread
and each arm's difference to the first arm run by run), FILE.json and FILE.png.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _run(args: argparse.Namespace) -> int:
    from nnunet_phyjoint.atomic_io import atomic_write_text
    from nnunet_phyjoint.benchmark.repeats import load_repeats, plot_repeats, repeats_markdown, repeats_summary
    from nnunet_phyjoint.evaluation.io import write_json

    try:
        results = load_repeats(args.folders)
    except (FileNotFoundError, ValueError) as e:
        print(f"phyjoint benchmark-repeats: error: {e}", file=sys.stderr)
        return 1
    summary = repeats_summary(results)
    out = Path(args.output)
    first = results[0]
    title = (f"{len(results)} independent runs: {first.get('dataset')}, {first.get('protocol')}, "
             f"{(first.get('budget') or {}).get('label', '')} per arm")
    figure = plot_repeats(summary, out.with_suffix(".png"), title)
    table = repeats_markdown(summary)
    lines = [f"# {title}", "", *(f"- run {k}: `{f}`" for k, f in zip(summary["repeat"], summary["runs"])),
             "- spread = max − min over runs; CIs over cases are in each run's own table", "", table, "",
             f"![repeats]({figure.name})", ""]
    atomic_write_text(out.with_suffix(".md"), "\n".join(lines))
    write_json(out.with_suffix(".json"), summary)
    print(table)
    print(f"written: {out.with_suffix('.md')}, {out.with_suffix('.json')}, {figure}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("benchmark-repeats", help="tabulate independent runs of one benchmark (run-to-run variation)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="benchmark output folders (or their table1.json / table_loso.json)")
    p.add_argument("-o", "--output", required=True, help="output file stem (FILE.md, FILE.json, FILE.png)")
    p.set_defaults(func=_run)
