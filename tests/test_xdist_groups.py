"""scripts/test.sh keeps each xdist_group on one worker (--dist loadgroup), so the fixtures a group
shares (fitted models, trained runs, compiled builds) are made once a run: a pytest or
pytest-xdist release that drops the groups would spread them and make the suite slower, not fail
it, so this checks it directly."""

import subprocess
import sys
import textwrap


def test_loadgroup_keeps_a_group_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(textwrap.dedent("""
        import os, time, pytest
        pytestmark = pytest.mark.xdist_group("together")
        @pytest.mark.parametrize("i", range(4))
        def test_grouped(i):
            time.sleep(0.2)
            print("worker", os.environ["PYTEST_XDIST_WORKER"])
        """))
    (tmp_path / "test_free.py").write_text("import time, pytest\n\n@pytest.mark.parametrize('i', range(4))\n"
                                            "def test_free(i):\n    time.sleep(0.2)\n")
    done = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-v", "-p",
                           "no:cacheprovider", "-o", "addopts=", str(tmp_path)], capture_output=True, text=True,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {line.split()[0] for line in done.stdout.splitlines() if "test_grouped[" in line and "PASSED" in line}
    assert len(workers) == 1, done.stdout
    assert "@together" in done.stdout, done.stdout
