"""Reading LoCoMo files and plain {role, content} lists into turns."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from optical_memory.experiments.locomo import (
    ConversationFormatError,
    parse_session_time,
    read_conversation,
    read_locomo,
    read_locomo_sample,
    read_turns,
)


def locomo_sample(sample_id: str = "conv-1", sessions: int = 2) -> dict[str, Any]:
    """A small sample in LoCoMo's shape; session numbers go past 9 to test their order."""
    conversation: dict[str, Any] = {"speaker_a": "Ana", "speaker_b": "Ben"}
    numbers = [1, 2, 10][:sessions] if sessions <= 3 else list(range(1, sessions + 1))
    for number in reversed(numbers):  # keys out of order on purpose
        conversation[f"session_{number}_date_time"] = f"1:56 pm on {number} May, 2023"
        conversation[f"session_{number}"] = [
            {"speaker": "Ana", "dia_id": f"D{number}:1", "text": f"Ana speaks in {number}"},
            {
                "speaker": "Ben",
                "dia_id": f"D{number}:2",
                "text": f"Ben answers in {number}",
                "img_url": ["http://example.invalid/x.jpg"],
                "blip_caption": "a photo of a dog",
            },
        ]
    return {
        "sample_id": sample_id,
        "conversation": conversation,
        "qa": [
            {"question": "Who spoke first?", "answer": "Ana", "evidence": ["D1:1"], "category": 4},
            {"question": "When?", "answer": 2023, "evidence": ["D1:1; D2:2"], "category": 2},
            {
                "question": "What did Ben paint?",
                "adversarial_answer": "a dog",
                "evidence": [],
                "category": 5,
            },
        ],
    }


def write_json(folder: Path, document: Any, name: str = "input.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


# --- LoCoMo -------------------------------------------------------------------------------------


def test_locomo_turns_keep_speaker_text_and_session_order(tmp_path: Path) -> None:
    [conversation] = read_locomo(write_json(tmp_path, [locomo_sample(sessions=3)]))
    assert [(t.role, t.content) for t in conversation.turns] == [
        ("Ana", "Ana speaks in 1"),
        ("Ben", "Ben answers in 1"),
        ("Ana", "Ana speaks in 2"),
        ("Ben", "Ben answers in 2"),
        ("Ana", "Ana speaks in 10"),  # session 10 after session 2, not after 1
        ("Ben", "Ben answers in 10"),
    ]
    assert conversation.dia_ids == ("D1:1", "D1:2", "D2:1", "D2:2", "D10:1", "D10:2")
    assert conversation.speakers == ("Ana", "Ben")
    assert conversation.sample_id == "conv-1"


def test_locomo_turns_carry_their_sessions_date_and_time(tmp_path: Path) -> None:
    [conversation] = read_locomo(write_json(tmp_path, [locomo_sample()]))
    assert conversation.turns[0].timestamp == datetime(2023, 5, 1, 13, 56)
    assert conversation.turns[3].timestamp == datetime(2023, 5, 2, 13, 56)


def test_locomo_questions_keep_answers_evidence_and_category(tmp_path: Path) -> None:
    [conversation] = read_locomo(write_json(tmp_path, [locomo_sample()]))
    first, when, adversarial = conversation.questions
    assert (first.question, first.answer, first.evidence, first.category) == (
        "Who spoke first?",
        "Ana",
        ("D1:1",),
        4,
    )
    assert when.answer == "2023"  # numbers in the data become text
    assert when.evidence == ("D1:1", "D2:2")  # "D1:1; D2:2" is two ids
    assert adversarial.answer is None and adversarial.adversarial_answer == "a dog"


def test_evidence_ids_lead_to_their_turns(tmp_path: Path) -> None:
    [conversation] = read_locomo(write_json(tmp_path, [locomo_sample()]))
    index = conversation.turn_index("D2:2")
    assert conversation.turns[index].content == "Ben answers in 2"
    with pytest.raises(KeyError, match="D9:9"):
        conversation.turn_index("D9:9")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1:56 pm on 8 May, 2023", datetime(2023, 5, 8, 13, 56)),
        ("10:04 am on 19 December, 2023", datetime(2023, 12, 19, 10, 4)),
        ("12:09 am on 13 September, 2023", datetime(2023, 9, 13, 0, 9)),
        ("8 May, 2023", datetime(2023, 5, 8)),
        ("sometime in spring", None),
    ],
)
def test_session_times_parse_or_give_none(text: str, expected: datetime | None) -> None:
    assert parse_session_time(text) == expected


def test_an_unreadable_session_time_leaves_turns_without_timestamp(tmp_path: Path) -> None:
    sample = locomo_sample()
    sample["conversation"]["session_1_date_time"] = "the day after"
    [conversation] = read_locomo(write_json(tmp_path, [sample]))
    assert conversation.turns[0].timestamp is None
    assert conversation.turns[2].timestamp is not None


def test_a_sample_is_picked_by_id_and_an_unknown_id_names_the_known_ones(tmp_path: Path) -> None:
    path = write_json(tmp_path, [locomo_sample("conv-1"), locomo_sample("conv-2")])
    assert read_locomo_sample(path, "conv-2").sample_id == "conv-2"
    with pytest.raises(ConversationFormatError, match="conv-1, conv-2"):
        read_locomo_sample(path, "conv-3")


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda s: s.update(conversation=[1, 2]), "conversation must be an object"),
        (lambda s: s["conversation"].update(session_1="hello"), "session_1 must be a list"),
        (lambda s: s["conversation"]["session_1"].append({"text": "x"}), "'speaker'"),
        (lambda s: s.update(qa="none"), "qa must be a list"),
        (lambda s: s.update(qa=[{"answer": 1}]), "'question'"),
        (
            lambda s: [s["conversation"].pop(k) for k in list(s["conversation"]) if "session" in k],
            "no session_N",
        ),
    ],
)
def test_wrong_locomo_shapes_say_what_is_wrong(tmp_path: Path, mangle: Any, message: str) -> None:
    sample = locomo_sample()
    mangle(sample)
    with pytest.raises(ConversationFormatError, match=message):
        read_locomo(write_json(tmp_path, [sample]))


def test_a_file_that_is_not_locomo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConversationFormatError, match="not LoCoMo"):
        read_locomo(write_json(tmp_path, [{"role": "user", "content": "hi"}]))


# --- plain {role, content} lists and either format ----------------------------------------------


def test_a_plain_message_list_becomes_turns(tmp_path: Path) -> None:
    path = write_json(
        tmp_path,
        [
            {"role": "user", "content": "Hi", "timestamp": "2024-01-02T03:04:05"},
            {"role": "assistant", "content": ""},
        ],
    )
    turns = read_turns(path)
    assert [(t.role, t.content) for t in turns] == [("user", "Hi"), ("assistant", "")]
    assert turns[0].timestamp == datetime(2024, 1, 2, 3, 4, 5)
    assert read_conversation(path) == turns


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"role": "user", "content": "hi"}, "JSON list"),
        ([{"role": "user"}], "content"),
        ([{"content": "hi"}], "role"),
        (["hello"], "role"),
        ([{"role": " ", "content": "hi"}], "role must not be empty"),
        ([{"role": "user", "content": "hi", "timestamp": "yesterday"}], r"\[0\]"),
    ],
)
def test_wrong_message_lists_say_what_is_wrong(tmp_path: Path, document: Any, message: str) -> None:
    with pytest.raises(ConversationFormatError, match=message):
        read_turns(write_json(tmp_path, document))


def test_read_conversation_takes_either_format(tmp_path: Path) -> None:
    one = write_json(tmp_path, [locomo_sample("conv-7")], "one.json")
    assert read_conversation(one)[0].role == "Ana"  # a single sample needs no id
    many = write_json(tmp_path, [locomo_sample("a"), locomo_sample("b")], "many.json")
    with pytest.raises(ConversationFormatError, match="pick one"):
        read_conversation(many)
    assert read_conversation(many, "b")[-1].content == "Ben answers in 2"
    plain = write_json(tmp_path, [{"role": "user", "content": "hi"}], "plain.json")
    with pytest.raises(ConversationFormatError, match="not LoCoMo"):
        read_conversation(plain, "conv-26")


def test_missing_binary_and_broken_files_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_conversation(tmp_path / "absent.json")
    binary = tmp_path / "page.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ConversationFormatError, match="not UTF-8"):
        read_conversation(binary)
    broken = tmp_path / "broken.json"
    broken.write_text('[{"role": "user",', encoding="utf-8")
    with pytest.raises(ConversationFormatError, match="not valid JSON"):
        read_conversation(broken)


# --- the real development split -------------------------------------------------------------------


def test_conv_26_matches_the_datasets_own_counts(locomo_path: Path) -> None:
    conversation = read_locomo_sample(locomo_path, "conv-26")
    assert len(conversation.turns) == 419  # as the dataset's README counts them
    assert len(conversation.questions) == 199
    assert conversation.speakers == ("Caroline", "Melanie")
    assert {turn.role for turn in conversation.turns} == {"Caroline", "Melanie"}
    assert conversation.dia_ids[0] == "D1:1"
    assert conversation.turns[0].timestamp == datetime(2023, 5, 8, 13, 56)
    assert all(turn.timestamp is not None for turn in conversation.turns)


def test_every_sample_of_the_dev_split_reads_and_its_evidence_resolves(locomo_path: Path) -> None:
    conversations = read_locomo(locomo_path)
    assert [c.sample_id for c in conversations] == [
        "conv-26",
        "conv-30",
        "conv-41",
        "conv-42",
        "conv-43",
    ]
    evidence = [(c, e) for c in conversations for q in c.questions for e in q.evidence]
    resolved = [e for c, e in evidence if e in c.dia_ids]
    assert len(resolved) >= 0.99 * len(evidence)  # a handful of ids in the data are malformed
