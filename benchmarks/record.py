"""Benchmark records: what a benchmark prints, kept with the command, commit, date and machine that made it.

Every benchmark here ends with ``recorded(main)``. Run as usual it only prints; with ``--record NAME`` it
also writes ``benchmarks/records/NAME.md`` (and copies the plots it made to ``docs/figures/NAME*.png``),
the file the documentation's benchmarks page includes. Refreshing a record is one command::

    python benchmarks/bench_neighbors.py --record neighbors

A benchmark that makes a plot hands it over with ``attach(path)``.
"""

from __future__ import annotations

import datetime
import io
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, List

ROOT = Path(__file__).resolve().parent.parent
RECORDS = ROOT / "benchmarks" / "records"
FIGURES = ROOT / "docs" / "figures"
_attached: List[Path] = []


def attach(path) -> None:
    """A plot (or other figure) this run made, to go with its record."""
    _attached.append(Path(path))


def commit() -> str:
    """The short hash of HEAD, with "+changes" when tracked files differ from it (records and their
    figures aside: benchmarks run one after another write them)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)benchmarks/records")
    return head + ("+changes" if changed else "")


def machine() -> str:
    """Cores, CPU model, memory, GPU (if torch sees one) and the torch build."""
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 2**20:.0f} GB"
                break
    except OSError:
        pass
    gpu, torch_version = "no GPU", "torch not installed"
    if "torch" in sys.modules:  # imported by the benchmark: its build and the GPU it sees
        torch = sys.modules["torch"]
        torch_version = f"torch {torch.__version__}"
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    else:  # the benchmark ran its work in child processes
        from importlib.metadata import PackageNotFoundError, version

        try:
            torch_version = f"torch {version('torch')}"
        except PackageNotFoundError:
            pass
    return f"{os.cpu_count()} cores, {model}{memory}; {gpu}; {torch_version}"


class _Tee(io.TextIOBase):
    def __init__(self, stream):
        self.stream, self.text = stream, io.StringIO()

    def write(self, s):
        self.stream.write(s)
        self.text.write(s)
        return len(s)

    def flush(self):
        self.stream.flush()


def _pop_record_name(argv: List[str]) -> str | None:
    for k, arg in enumerate(argv):
        if arg == "--record" and k + 1 < len(argv):
            name = argv[k + 1]
            del argv[k:k + 2]
            return name
        if arg.startswith("--record="):
            del argv[k]
            return arg.split("=", 1)[1]
    return None


def render(name: str, command: str, output: str, figures: List[str], when: str, revision: str, where: str) -> str:
    """The record's Markdown: a header table, the printed output as it came, and the figures."""
    lines = [f"<!-- written by `{command} --record {name}`; rerun it to refresh -->", "",
             "| | |", "|---|---|", f"| command | `{command}` |", f"| commit | `{revision}` |",
             f"| date | {when} |", f"| machine | {where} |", "", "```text", output.rstrip("\n"), "```", ""]
    lines += [f"![{name}](figures/{figure})" for figure in figures]
    return "\n".join(lines).rstrip("\n") + "\n"


def recorded(main: Callable[[], object]) -> None:
    """Run ``main``; with ``--record NAME`` on the command line, also write its record (see module docstring)."""
    name = _pop_record_name(sys.argv)
    if name is None:
        result = main()
        sys.exit(result if isinstance(result, int) else 0)
    started = datetime.datetime.now(datetime.timezone.utc)
    command = "python " + shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        result = main()
    finally:
        sys.stdout = tee.stream
    revision = commit()  # before the figures below are copied over tracked ones
    figures = []
    FIGURES.mkdir(parents=True, exist_ok=True)
    for k, path in enumerate(_attached):
        target = f"{name}{'' if k == 0 else f'-{k + 1}'}{path.suffix}"
        shutil.copyfile(path, FIGURES / target)
        figures.append(target)
    RECORDS.mkdir(parents=True, exist_ok=True)
    text = render(name, command, tee.text.getvalue(), figures, started.strftime("%Y-%m-%d %H:%M UTC"), revision,
                  machine())
    tmp = RECORDS / f".{name}.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, RECORDS / f"{name}.md")
    print(f"record written: {os.path.relpath(RECORDS / f'{name}.md', ROOT)}", file=sys.stderr)
    sys.exit(result if isinstance(result, int) else 0)
