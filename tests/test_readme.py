"""Every ```python block of the README, and of the docs pages, runs as written: each on its own
(as a reader pastes one), in a fresh folder. The hosted model they name is a local stand-in of
the OpenAI API on 127.0.0.1 (``$OPENAI_BASE_URL``, as a reader with their own server sets it);
the local-model block loads a tiny random checkpoint saved under the official names in place of
the real one. Blocks that need a server the reader runs elsewhere (a GPU host, PostgreSQL) are
the only ones left out, by what they name."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from provider_stubs import provider_stubs
from tiny_deepseek import tiny_model, write_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REAL_CHECKPOINT = '"/models/DeepSeek-OCR"'
#: What a block names when it needs a server of the reader's own.
ELSEWHERE = ("GPU-HOST", "postgresql://")


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(encoding="utf-8"), re.M | re.S)


BLOCKS = [
    pytest.param(block, id=f"{page.name}-{number}")
    for page in PAGES
    for number, block in enumerate(python_blocks(page), start=1)
    if not any(marker in block for marker in ELSEWHERE)
]


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-deepseek-ocr"
    directory.mkdir()
    write_checkpoint(directory, tiny_model(directory))
    return directory


@pytest.fixture
def openai_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The OpenAI API a block's ``ChatOpenAI`` / ``"openai:..."`` model talks to; yields the
    request bodies it received."""
    with provider_stubs() as server:
        host, port = server.server_address[:2]
        monkeypatch.setenv("OPENAI_BASE_URL", f"http://{host!s}:{port}/v1")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-local-stub")
        yield server.requests


def run(block: str, namespace: dict[str, Any] | None = None) -> dict[str, Any]:
    namespace = {"__name__": "readme"} if namespace is None else namespace
    exec(compile(block, "a python block of the docs", "exec"), namespace)
    return namespace


def test_the_readme_has_its_three_quickstarts() -> None:
    readme = python_blocks(ROOT / "README.md")
    assert any("OpticalMemory(" in block and "context(" in block for block in readme)
    assert any("create_agent(" in block and "OpticalMemoryMiddleware" in block for block in readme)
    assert any("wrap(" in block for block in readme)
    assert len(ROOT.joinpath("README.md").read_text().splitlines()) <= 200
    assert any(REAL_CHECKPOINT in block for page in PAGES for block in python_blocks(page))


@pytest.mark.parametrize("block", BLOCKS)
def test_every_python_block_runs_as_written(
    block: str,
    tiny_checkpoint: Path,
    chromium_path: str,
    openai_api: list[dict[str, Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPTICAL_MEMORY_CHROMIUM", chromium_path)
    block = block.replace(
        f"DeepSeekOCR.from_checkpoint({REAL_CHECKPOINT})",
        f"DeepSeekOCR.from_checkpoint({str(tiny_checkpoint)!r}, "
        "encoder_config=__import__('optical_memory.model').model.DeepEncoderConfig.tiny())",
    )
    run(block)
    capsys.readouterr()


def test_the_memory_quickstart_prints_pages_and_finds_the_locker_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = [b for b in python_blocks(ROOT / "README.md") if "context(" in b]
    run(block)
    printed = capsys.readouterr().out
    assert "tokens for" in printed and "recent turns as text" in printed
    assert "1 My locker code is 48213." in printed  # the search's top hit, turn 1


def test_the_agent_quickstart_sends_the_first_message_to_the_model_once(
    openai_api: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = [b for b in python_blocks(ROOT / "README.md") if "create_agent(" in b]
    run(block)
    assert len(openai_api) == 2
    # The second call got only the new message from the caller: the memory supplied the first.
    second = json.dumps(openai_api[1]["messages"])
    assert second.count("48213") == 1 and "What is my locker code?" in second


def test_the_wrap_quickstart_stores_each_turn_once_though_it_passes_the_whole_history(
    openai_api: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (block,) = [b for b in python_blocks(ROOT / "README.md") if "wrap(" in b]
    namespace = run(block)
    second = json.dumps(openai_api[1]["messages"])
    assert second.count("blue Brompton") == 1
    memory = namespace["chat"].memory("bob")
    assert [turn.role for turn in memory.turns(1, 10)] == ["user", "assistant", "user", "assistant"]
