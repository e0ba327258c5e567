"""Shared fixtures: the bundled data folder, an isolated index cache."""

import os
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
def operator_library(tmp_path_factory) -> Path:
    """mlip's compiled operator library (mlip.export.native), built once per test run: the pytest-xdist
    workers share the folder above their own temporary ones (the build's file lock lets one build)."""
    from mlip.export.native import library

    before = os.environ.get("MLIP_CACHE_DIR")
    os.environ["MLIP_CACHE_DIR"] = str(tmp_path_factory.getbasetemp().parent / "mlip-operators")
    try:
        return library()
    finally:
        if before is None:
            os.environ.pop("MLIP_CACHE_DIR")
        else:
            os.environ["MLIP_CACHE_DIR"] = before
