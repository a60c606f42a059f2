"""Progress in a log (stdout/stderr not a terminal) is whole lines, never tqdm's carriage-return redraws."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys

from nnunet_phyjoint.progress import LineProgress, is_terminal, progress
from test_convert_busi import make_busi

LINE = re.compile(r"^(?P<desc>[^:]+): (?P<n>\d+)/(?P<total>\d+) \((?P<pct>\d+)%\), \d+ s")


def test_not_a_terminal_gives_lines_every_ten_percent_and_at_the_end():
    out = io.StringIO()
    assert not is_terminal(out)
    bar = progress(range(200), desc="converting x", unit="image", stream=out)
    assert isinstance(bar, LineProgress)
    for i in bar:
        bar.set_postfix(loss=f"{i:.3g}")
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 10  # 10 %, 20 %, ... 100 %
    counts = [int(LINE.match(line)["n"]) for line in lines]
    assert counts == list(range(20, 201, 20))
    assert lines[-1].startswith("converting x: 200/200 (100%), ") and lines[-1].endswith("loss=199")


def test_lines_without_a_total_time_based_and_silent_when_disabled():
    out = io.StringIO()
    with progress(total=None, desc="gen", unit="img", stream=out, every_seconds=0) as bar:
        for _ in range(3):
            bar.update()
    lines = out.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["gen: 1 img", "gen: 2 img", "gen: 3 img"]
    assert "\r" not in out.getvalue()
    out = io.StringIO()
    assert list(progress(range(5), desc="quiet", disable=True, stream=out)) == list(range(5))
    assert out.getvalue() == ""


def test_phyjoint_convert_to_a_log_writes_whole_lines(tmp_path, nnunet_env):
    src = make_busi(tmp_path / "busi")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from nnunet_phyjoint.cli import main; sys.exit(main())",
         "convert", "busi", str(src), "-d", "501"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "80"}, timeout=300)
    log = proc.stdout.decode()
    assert proc.returncode == 0, log
    assert "\r" not in log
    progress_lines = [line for line in log.splitlines() if line.startswith("converting busi: ")]
    assert progress_lines, log
    last = LINE.match(progress_lines[-1])
    assert last and last["n"] == last["total"] and last["pct"] == "100", progress_lines
    assert all(LINE.match(line) for line in progress_lines), progress_lines
