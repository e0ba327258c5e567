"""benchmarks/record.py: a benchmark run with --record NAME writes the record the benchmarks page
includes (command, commit, date, machine, the printed output, the plots); without it, only prints."""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def record(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("record", ROOT / "benchmarks" / "record.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RECORDS", tmp_path / "records")
    monkeypatch.setattr(module, "FIGURES", tmp_path / "figures")
    return module


def bench(record, tmp_path):
    def main():
        print("system  atoms  atom-steps/s")
        print("Si 64      64         548.0")
        plot = tmp_path / "plot.png"
        plot.write_bytes(b"\x89PNG fake")
        record.attach(plot)
    return main


def test_record_names_command_commit_date_machine_and_holds_the_output(record, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(ROOT / "benchmarks" / "bench_x.py"), "--sizes", "64", "--record", "x"])
    with pytest.raises(SystemExit) as done:
        record.recorded(bench(record, tmp_path))
    assert done.value.code == 0
    assert "Si 64      64         548.0" in capsys.readouterr().out  # printed as usual
    text = (tmp_path / "records" / "x.md").read_text()
    assert "| command | `python benchmarks/bench_x.py --sizes 64` |" in text
    assert re.search(r"\| commit \| `[0-9a-f]{7,}(\+changes)?` \|", text)
    assert re.search(r"\| date \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \|", text)
    assert re.search(r"\| machine \| \d+ cores, .+; (no GPU|.+); (torch [^ ]+|torch not installed) \|", text)
    assert "```text\nsystem  atoms  atom-steps/s\nSi 64      64         548.0\n```" in text
    assert "![x](figures/x.png)" in text and (tmp_path / "figures" / "x.png").read_bytes() == b"\x89PNG fake"


def test_the_commit_is_read_before_the_figures_are_written(record, tmp_path, monkeypatch):
    """A record's figure replaces a tracked file (docs/figures): the recorder's own write is no change."""
    monkeypatch.setattr(sys, "argv", ["bench_x.py", "--record", "x"])
    monkeypatch.setattr(record, "commit", lambda: "abc1234" + ("+changes" if (tmp_path / "figures" / "x.png").exists()
                                                               else ""))
    with pytest.raises(SystemExit):
        record.recorded(bench(record, tmp_path))
    assert "| commit | `abc1234` |" in (tmp_path / "records" / "x.md").read_text()


def test_without_record_nothing_is_written(record, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["bench_x.py", "--sizes", "64"])
    with pytest.raises(SystemExit):
        record.recorded(bench(record, tmp_path))
    assert not (tmp_path / "records").exists()
    assert sys.argv == ["bench_x.py", "--sizes", "64"]


def test_every_record_the_page_includes_exists_and_names_its_run():
    page = (ROOT / "docs" / "benchmarks.md").read_text()
    names = re.findall(r'^--8<-- "([^"]+)"$', page, re.M)
    assert len(names) >= 10
    for name in names:
        text = (ROOT / "benchmarks" / "records" / name).read_text()
        for field in ("command", "commit", "date", "machine"):
            assert re.search(rf"^\| {field} \| .+ \|$", text, re.M), (name, field)
    kept = {p.name for p in (ROOT / "benchmarks" / "records").glob("*.md")}
    assert kept == set(names), "records the page does not show: " + ", ".join(sorted(kept - set(names)))


def test_the_commit_is_marked_changed_by_code_not_by_earlier_records(record, tmp_path, monkeypatch):
    """Benchmarks run one after another: the records the first wrote do not mark the second's commit."""
    import subprocess

    repo = tmp_path / "repo"
    (repo / "benchmarks" / "records").mkdir(parents=True)
    (repo / "code.py").write_text("x = 1\n")
    (repo / "benchmarks" / "records" / "first.md").write_text("old\n")

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "start")
    monkeypatch.setattr(record, "ROOT", repo)
    (repo / "benchmarks" / "records" / "first.md").write_text("new\n")
    assert re.fullmatch(r"[0-9a-f]{7,}", record.commit())
    (repo / "code.py").write_text("x = 2\n")
    assert record.commit().endswith("+changes")
