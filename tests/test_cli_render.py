"""`optical-memory render`: pages and manifest on disk, honest token totals, clean errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from optical_memory.apps.cli import main
from optical_memory.tokens import count_text_tokens

LOREM = "We went camping by the lake; the kids loved roasting marshmallows. " * 12


def write_messages(folder: Path, messages: list[dict[str, str]]) -> Path:
    path = folder / "chat.json"
    path.write_text(json.dumps(messages), encoding="utf-8")
    return path


def run_render(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["render", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def read_manifest(folder: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((folder / "manifest.json").read_text("utf-8"))
    return manifest


@pytest.fixture
def chat(tmp_path: Path) -> tuple[Path, list[dict[str, str]]]:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"Turn {i}. " + LOREM}
        for i in range(12)
    ] + [{"role": "user", "content": "短い日本語のメッセージ 😀"}]
    return write_messages(tmp_path, messages), messages


def test_render_writes_one_png_per_page_at_the_modes_size(
    chat: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = chat
    out = tmp_path / "pages"
    status, stdout, _ = run_render(capsys, str(path), "--mode", "tiny", "--out", str(out))
    assert status == 0
    manifest = read_manifest(out)
    files = sorted(p.name for p in out.glob("*.png"))
    assert files == [page["file"] for page in manifest["pages"]]
    assert len(files) == manifest["totals"]["pages"] > 1
    for name in files:
        with Image.open(out / name) as image:
            assert image.size == (512, 512)
    assert f"{len(files)} pages at tiny" in stdout


def test_manifest_pages_record_mode_size_spans_and_deepseek_tokens(
    chat: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, messages = chat
    out = tmp_path / "pages"
    run_render(capsys, str(path), "--mode", "gundam", "--out", str(out))
    manifest = read_manifest(out)
    for page in manifest["pages"]:
        assert page["mode"] == "gundam"
        assert page["size"] == [1280, 1280]
        assert page["vision_tokens"] == 693  # 1280x1280: global view + 2x2 tiles
    rebuilt = [""] * len(messages)
    for page in manifest["pages"]:
        for turn, start, end in page["spans"]:
            rebuilt[turn] += messages[turn]["content"][start:end]
    assert rebuilt == [m["content"] for m in messages]
    assert manifest["totals"]["vision_tokens"] == 693 * manifest["totals"]["pages"]
    assert manifest["totals"]["turns"] == len(messages)


def test_text_token_total_is_the_count_of_the_whole_transcript(
    chat: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, messages = chat
    out = tmp_path / "pages"
    run_render(capsys, str(path), "--mode", "small", "--out", str(out))
    manifest = read_manifest(out)
    text = "\n".join(f"{m['role']}: {m['content']}" for m in messages)
    per_page = [page["text_tokens"] for page in manifest["pages"]]
    assert sum(per_page) == manifest["totals"]["text_tokens"] == count_text_tokens(text)
    assert manifest["totals"]["characters"] == len(text)
    assert all(tokens > 0 for tokens in per_page)


def test_each_pages_text_tokens_are_those_of_its_own_characters_give_or_take_the_cut(
    chat: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, messages = chat
    out = tmp_path / "pages"
    run_render(capsys, str(path), "--mode", "base", "--out", str(out))
    for page in read_manifest(out)["pages"]:
        own = "\n".join(
            (f"{messages[turn]['role']}: " if start == 0 else "")
            + messages[turn]["content"][start:end]
            for turn, start, end in page["spans"]
        )
        # A token cut by the page break counts once, on the page where it starts.
        assert abs(page["text_tokens"] - count_text_tokens(own)) <= 2


def test_rendering_again_replaces_the_pages_of_an_earlier_longer_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pages"
    long = write_messages(tmp_path, [{"role": "user", "content": LOREM * 20}])
    run_render(capsys, str(long), "--mode", "base", "--out", str(out))
    assert len(list(out.glob("page-*.png"))) > 1
    short = write_messages(tmp_path, [{"role": "user", "content": "hi"}])
    run_render(capsys, str(short), "--mode", "base", "--out", str(out))
    assert [p.name for p in out.glob("page-*.png")] == ["page-0001-base.png"]


def test_locomo_conv_26_at_tiny_counts_the_same_text_tokens_as_its_transcript(
    locomo_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "conv-26"
    status, _, _ = run_render(
        capsys, str(locomo_path), "--sample", "conv-26", "--mode", "tiny", "--out", str(out)
    )
    assert status == 0
    # The same text, built straight from the raw file: "speaker: text" per turn, in session
    # order, joined by newlines.
    [sample] = [
        s for s in json.loads(locomo_path.read_text("utf-8")) if s["sample_id"] == "conv-26"
    ]
    sessions = sorted(
        (int(key.split("_")[1]), value)
        for key, value in sample["conversation"].items()
        if key.startswith("session_") and not key.endswith("date_time")
    )
    text = "\n".join(f"{t['speaker']}: {t['text']}" for _, turns in sessions for t in turns)
    manifest = read_manifest(out)
    assert manifest["totals"]["text_tokens"] == count_text_tokens(text)
    assert manifest["totals"]["turns"] == 419
    assert manifest["sample"] == "conv-26"
    for page in manifest["pages"][:3]:
        with Image.open(out / page["file"]) as image:
            assert image.size == (512, 512)
    assert manifest["totals"]["vision_tokens"] == 73 * manifest["totals"]["pages"]


# --- bad input: one line on stderr, non-zero exit, no traceback ----------------------------------


def assert_one_clean_line(err: str, *words: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0]


def test_a_missing_file_is_one_clean_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_render(
        capsys, str(tmp_path / "absent.json"), "--mode", "tiny", "--out", str(tmp_path / "o")
    )
    assert status != 0
    assert_one_clean_line(err, "no such file", "absent.json")


def test_a_binary_file_is_one_clean_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "image.png"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(binary)
    status, _, err = run_render(capsys, str(binary), "--mode", "tiny", "--out", str(tmp_path))
    assert status != 0
    assert_one_clean_line(err, "not UTF-8")


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"role": "user", "content": "hi"}, ["JSON list"]),
        ([{"role": "user"}], ["content"]),
        ([], ["no turns"]),
        ("[1, 2", ["not valid JSON"]),
    ],
)
def test_a_wrong_json_shape_is_one_clean_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: Any, words: list[str]
) -> None:
    path = tmp_path / "input.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document), "utf-8")
    status, _, err = run_render(capsys, str(path), "--mode", "tiny", "--out", str(tmp_path / "o"))
    assert status != 0
    assert_one_clean_line(err, *words)
    assert not (tmp_path / "o").exists(), "nothing is written for bad input"


def test_an_unknown_mode_is_one_clean_line(
    chat: tuple[Path, list[dict[str, str]]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = chat
    with pytest.raises(SystemExit) as exit_info:
        main(["render", str(path), "--mode", "huge", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert_one_clean_line(capsys.readouterr().err, "unknown mode 'huge'", "tiny")


def test_an_unknown_sample_names_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = {
        "sample_id": "conv-9",
        "conversation": {"session_1": [{"speaker": "A", "dia_id": "D1:1", "text": "hi"}]},
        "qa": [],
    }
    path = tmp_path / "locomo.json"
    path.write_text(json.dumps([sample]), "utf-8")
    status, _, err = run_render(
        capsys, str(path), "--sample", "conv-1", "--mode", "tiny", "--out", str(tmp_path / "o")
    )
    assert status != 0
    assert_one_clean_line(err, "conv-1", "conv-9")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--port", "99999"], "port 99999 is out of range: give 1 to 65535"),
        (["serve", "--port", "http"], "port 'http' is not a whole number"),
        (["threads", "list", "--db", "mysql://x/y"], "unsupported store address 'mysql://x/y'"),
    ],
)
def test_bad_command_line_values_are_one_line_errors(
    argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_density_help_prints_percent_signs_once(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["density", "--help"])
    out = capsys.readouterr().out
    assert ">= 95%" in out and "%%" not in out
