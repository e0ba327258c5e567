"""The commands of README.md and of the documentation's quickstart page, run as written, in order, in
one working directory (the repository's .venv, scripts and data beside it), each block failing the
test with its output when it fails.

A block preceded by ``<!-- docs-test: long -->`` (the quickstart's 10-minute training, the test
suite itself) runs only in the long test (``pytest -m long``); ``<!-- docs-test: budget -->``
marks a training command, which the quick test runs for a fixed few epochs instead of its ``time_budget``
(a model that does not depend on how loaded the machine is) so that the blocks after it have a model;
every other block runs as written in both."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = {"readme": ROOT / "README.md", "quickstart": ROOT / "docs" / "quickstart.md"}
# epochs of training in the quick test, in place of the time budget (under a budget, a loaded machine
# trains fewer epochs, and one epoch under a budget ends at the top of the learning-rate schedule): the
# README's model goes on to MD with an uncertainty limit, the quickstart page's only to a short
# relaxation, MD and export
QUICK_EPOCHS = {"readme": 3, "quickstart": 1}
BLOCK = re.compile(r"(?:<!-- docs-test: (?P<mark>\w+) -->\s*\n)?^```(?P<lang>\w*)\n(?P<code>.*?)^```", re.S | re.M)


@dataclass
class Block:
    page: str
    line: int
    mark: str | None
    lang: str
    code: str


def blocks(path: Path) -> list[Block]:
    """The bash and python blocks of a Markdown page, in order."""
    text = path.read_text()
    found = []
    for m in BLOCK.finditer(text):
        if m["lang"] in ("bash", "python"):
            found.append(Block(path.name, text.count("\n", 0, m.start("code")) + 1, m["mark"], m["lang"], m["code"]))
    return found


def workdir(tmp_path: Path) -> Path:
    """A directory laid out as a clone for the commands: the repository's set-up, scripts and data."""
    for name in (".venv", "scripts", "data", "pyproject.toml", "requirements", "mkdocs.yml", "docs", "benchmarks"):
        (tmp_path / name).symlink_to(ROOT / name)
    return tmp_path


def run_page(page: str, work: Path, quick: bool) -> None:
    venv = work / ".venv" / "bin"  # the clone's own environment, once its set-up block made it
    env = dict(os.environ, PATH=f"{venv}{os.pathsep}{os.environ['PATH']}", MPLBACKEND="Agg")
    env.pop("TRITON_INTERPRET", None)
    ran = 0
    for block in blocks(PAGES[page]):
        code = block.code
        if quick and block.mark == "long":
            continue
        if quick and block.mark == "budget":
            assert "time_budget=" in code, f"{block.page}:{block.line}: a budget block without time_budget"
            code = re.sub(r"time_budget=\S+", f"time_budget=null trainer.max_epochs={QUICK_EPOCHS[page]}", code)
        command = (["bash", "-euo", "pipefail", "-c", code] if block.lang == "bash"
                   else [str(venv / "python"), "-c", code])
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=3000)
        assert done.returncode == 0, (f"{block.page}:{block.line}: the {block.lang} block exited {done.returncode}\n"
                                      f"{code}\n--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}")
        ran += 1
    assert ran > 0


def test_every_page_has_commands_and_marks_are_known():
    for page, path in PAGES.items():
        found = blocks(path)
        assert found, page
        assert {b.mark for b in found} <= {None, "long", "budget"}, page
    assert sum(1 for b in blocks(PAGES["readme"]) if b.mark is None) >= 5


@pytest.mark.xdist_group("docs-commands")
def test_readme_commands_run_as_written(tmp_path, build_cache, monkeypatch):
    """Every README command but the long ones; the training command for a few epochs; the
    LAMMPS plugin from the run's shared build cache (tests/integrations build it too)."""
    monkeypatch.setenv("MLIP_CACHE_DIR", str(build_cache))
    run_page("readme", workdir(tmp_path), quick=True)


@pytest.mark.xdist_group("docs-commands")
def test_quickstart_page_commands_run_as_written(tmp_path):
    run_page("quickstart", workdir(tmp_path), quick=True)


@pytest.mark.long
@pytest.mark.parametrize("page", list(PAGES))
def test_every_command_runs_as_written_in_a_fresh_clone(tmp_path, page):
    """The long blocks too (set-up, the quickstart's full job, the test suite, full training budgets), in a
    fresh clone of the committed tree."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    run_page(page, clone, quick=False)
