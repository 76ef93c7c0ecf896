"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_server import PostgresServer, postgres_bin

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The LoCoMo file (a JSON list in LoCoMo's format, e.g. its locomo10.json or a part of it) is
#: never part of the repository: this variable names it, and the tests that need it skip without.
LOCOMO_VARIABLE = "OPTICAL_MEMORY_LOCOMO"
CHROMIUM = os.environ.get("OPTICAL_MEMORY_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(autouse=True)
def _private_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test session writes derived files (encodings, caches) under its own temp folder."""
    monkeypatch.setenv("OPTICAL_MEMORY_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def locomo_path() -> Path:
    """The LoCoMo file named by $OPTICAL_MEMORY_LOCOMO; skips when the variable is unset."""
    named = os.environ.get(LOCOMO_VARIABLE)
    if not named:
        pytest.skip(f"real data not given: set {LOCOMO_VARIABLE} to a LoCoMo JSON file")
    path = Path(named)
    if not path.is_file():
        pytest.fail(f"{LOCOMO_VARIABLE}={named} names no file")
    return path


@pytest.fixture
def chromium_path() -> str:
    """Debian's Chromium; `make test` installs it, so a missing one is a setup failure."""
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make setup` as root (apt chromium)")
    return CHROMIUM


# What `make unit-core` leaves out: tests needing torch, Chromium or an OCR engine. Whole files
# by name, and any test that asks for the `chromium_path` fixture.
_NEEDS = {
    "torch": {
        "test_chat_model.py",
        "test_chat_model_standard.py",
        "test_decoder_prefix.py",
        "test_decoder.py",
        "test_decoder_checkpoint.py",
        "test_deepencoder.py",
        "test_encoder_checkpoint.py",
        "test_preprocess.py",
        "test_readme.py",
        "test_visual_cache.py",
    },
    "chromium": {"test_html_renderer.py", "test_html_security.py"},
    "ocr": {"test_ocr.py", "test_density.py", "test_demo.py", "test_experiment.py"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker, files in _NEEDS.items():
            if item.path.name in files:
                item.add_marker(marker)
        if "chromium_path" in getattr(item, "fixturenames", ()):
            item.add_marker("chromium")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for this test session (Debian's `postgresql` package, which
    `make setup` installs); stopped and removed afterwards."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.fail("PostgreSQL not found in /usr/lib/postgresql: run `make setup` as root")
    server = PostgresServer(bin_dir)
    server.start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(params=["sqlite", "postgres"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's store lives: a new SQLite file, or a new database on the test server."""
    if request.param == "sqlite":
        return str(tmp_path / "memory.db")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()
