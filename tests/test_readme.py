"""Every ```python block of the README runs as written, in order, in one namespace (as a reader
pastes them one after another), in a fresh folder. The local-model block loads a tiny random
checkpoint saved under the official names in place of the real one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from tiny_deepseek import tiny_model, write_checkpoint

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", README.read_text(encoding="utf-8"), re.M | re.S)
REAL_CHECKPOINT = '"/models/DeepSeek-OCR"'


@pytest.fixture
def tiny_checkpoint(tmp_path: Path) -> Path:
    directory = tmp_path / "tiny-deepseek-ocr"
    directory.mkdir()
    write_checkpoint(directory, tiny_model(directory))
    return directory


def test_the_readme_has_python_blocks_to_run() -> None:
    assert len(BLOCKS) >= 4
    assert any(REAL_CHECKPOINT in block for block in BLOCKS)


def test_every_python_block_of_the_readme_runs(
    tiny_checkpoint: Path,
    chromium_path: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-not-used")  # building an agent sends nothing
    monkeypatch.setenv("OPTICAL_MEMORY_CHROMIUM", chromium_path)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for number, block in enumerate(BLOCKS, start=1):
        code = block.replace(
            f"DeepSeekOCR.from_checkpoint({REAL_CHECKPOINT})",
            f"DeepSeekOCR.from_checkpoint({str(tiny_checkpoint)!r}, "
            "encoder_config=__import__('optical_memory.model').model.DeepEncoderConfig.tiny())",
        )
        exec(compile(code, f"README.md python block {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "tokens for" in printed  # the memory block listed its pages
    assert namespace["memory"].store is not None
