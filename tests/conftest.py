"""Shared fixtures: the bundled data folder, an isolated index cache."""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("MLIP_CACHE_DIR", str(tmp_path_factory.mktemp("mlip-cache")))


@pytest.fixture
def data_dir() -> Path:
    assert DATA.is_dir(), f"bundled data folder missing: {DATA}"
    return DATA


def pytest_configure(config):
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(scope="session")
def build_cache(tmp_path_factory) -> Path:
    """An MLIP_CACHE_DIR for compiled builds (the operator library, the LAMMPS plugin) shared by the
    run's pytest-xdist workers: the folder above their own temporary ones; each build's file lock
    lets one worker build and the others take it."""
    return tmp_path_factory.getbasetemp().parent / "mlip-builds"


@contextmanager
def cache_dir(path: Path):
    """MLIP_CACHE_DIR set to ``path`` inside the block (fixtures wider than a test cannot use monkeypatch)."""
    before = os.environ.get("MLIP_CACHE_DIR")
    os.environ["MLIP_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("MLIP_CACHE_DIR")
        else:
            os.environ["MLIP_CACHE_DIR"] = before


@pytest.fixture(scope="session")
def operator_library(build_cache) -> Path:
    """mlip's compiled operator library (mlip.export.native), built once per test run."""
    from mlip.export.native import library

    with cache_dir(build_cache):
        return library()
