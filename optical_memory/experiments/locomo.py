"""Reading conversations from JSON files: LoCoMo samples and plain ``{role, content}`` lists.

LoCoMo (Maharana et al., ACL 2024) is a list of samples, each with a ``sample_id``, a
``conversation`` (``speaker_a``, ``speaker_b``, ``session_N``: a list of ``{speaker, dia_id,
text}``, ``session_N_date_time``: e.g. ``"1:56 pm on 8 May, 2023"``) and a ``qa`` list of
``{question, answer | adversarial_answer, evidence, category}``. A LoCoMo turn becomes a
:class:`~optical_memory.turns.Turn` whose role is the speaker's name and whose content is the
text, stamped with its session's date and time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from optical_memory.turns import Turn

_SESSION = re.compile(r"session_(\d+)")


class ConversationFormatError(ValueError):
    """A file is not a conversation this module reads; the message says what was expected."""


@dataclass(frozen=True)
class LocomoQuestion:
    """One LoCoMo question. ``category``: 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop,
    5 adversarial (answered by ``adversarial_answer``; ``answer`` is then ``None``)."""

    question: str
    answer: str | None
    evidence: tuple[str, ...]
    category: int
    adversarial_answer: str | None = None


@dataclass(frozen=True)
class LocomoConversation:
    """One LoCoMo sample: its turns in order, each turn's ``dia_id`` (``"D<session>:<turn>"``,
    ``dia_ids[i]`` belongs to ``turns[i]``) and its questions."""

    sample_id: str
    speakers: tuple[str, str]
    turns: tuple[Turn, ...]
    dia_ids: tuple[str, ...]
    questions: tuple[LocomoQuestion, ...]

    def turn_index(self, dia_id: str) -> int:
        """Position in ``turns`` of the turn with this ``dia_id`` (evidence → turn)."""
        try:
            return self.dia_ids.index(dia_id)
        except ValueError:
            raise KeyError(f"{self.sample_id} has no turn {dia_id!r}") from None


def parse_session_time(text: str) -> datetime | None:
    """``"1:56 pm on 8 May, 2023"`` → ``datetime(2023, 5, 8, 13, 56)``; ``None`` if unreadable."""
    cleaned = " ".join(text.replace(",", " ").split()).lower()
    for layout in ("%I:%M %p on %d %B %Y", "%I:%M %p on %d %b %Y", "%d %B %Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(cleaned, layout)
        except ValueError:
            continue
    return None


def read_json(path: str | Path) -> Any:
    """The JSON document in ``path``, with errors that name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConversationFormatError(
            f"{path} is not UTF-8 text: pass a JSON file (a list of {{role, content}} "
            "or a LoCoMo file)"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ConversationFormatError(
            f"{path} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None


def is_locomo(document: Any) -> bool:
    """Whether a parsed JSON document looks like LoCoMo (samples with a ``conversation``)."""
    samples = document if isinstance(document, list) else [document]
    return bool(samples) and all(
        isinstance(sample, dict) and "conversation" in sample for sample in samples
    )


def locomo_conversations(document: Any, source: str = "input") -> list[LocomoConversation]:
    """Every sample of a parsed LoCoMo document (a list of samples, or one sample)."""
    samples = document if isinstance(document, list) else [document]
    if not is_locomo(document):
        raise ConversationFormatError(
            f"{source} is not LoCoMo: expected a list of samples, each with a 'conversation'"
        )
    return [_conversation(sample, f"{source}[{i}]") for i, sample in enumerate(samples)]


def read_locomo(path: str | Path) -> list[LocomoConversation]:
    """Every conversation in a LoCoMo file."""
    return locomo_conversations(read_json(path), str(path))


def read_locomo_sample(path: str | Path, sample_id: str) -> LocomoConversation:
    """The conversation ``sample_id`` (e.g. ``"conv-26"``) of a LoCoMo file."""
    return pick_sample(read_locomo(path), sample_id, str(path))


def pick_sample(
    conversations: Sequence[LocomoConversation], sample_id: str, source: str = "input"
) -> LocomoConversation:
    for conversation in conversations:
        if conversation.sample_id == sample_id:
            return conversation
    known = ", ".join(c.sample_id for c in conversations)
    raise ConversationFormatError(f"{source} has no sample {sample_id!r}: choose one of {known}")


def turns_from_messages(document: Any, source: str = "input") -> list[Turn]:
    """Turns from a parsed JSON list of ``{role, content}`` objects (``timestamp``, optional,
    is an ISO 8601 string)."""
    if not isinstance(document, list):
        raise ConversationFormatError(
            f"{source} must be a JSON list of {{role, content}} objects or a LoCoMo file, "
            f"not a JSON {type(document).__name__}"
        )
    turns = []
    for index, message in enumerate(document):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ConversationFormatError(
                f"{source}[{index}] must be an object with a string 'role' and 'content'"
            )
        if not isinstance(message.get("content"), str):
            raise ConversationFormatError(f"{source}[{index}] has no string 'content'")
        try:
            turns.append(
                Turn(
                    role=message["role"],
                    content=message["content"],
                    timestamp=message.get("timestamp"),
                )
            )
        except ValidationError as error:
            problem = error.errors()[0]["msg"]
            raise ConversationFormatError(f"{source}[{index}]: {problem}") from None
    return turns


def read_turns(path: str | Path) -> list[Turn]:
    """Turns from a JSON file holding a list of ``{role, content}`` objects."""
    return turns_from_messages(read_json(path), str(path))


def read_conversation(path: str | Path, sample_id: str | None = None) -> list[Turn]:
    """Turns from either format: a ``{role, content}`` list, or one LoCoMo sample.

    A LoCoMo file of several samples needs ``sample_id``; a plain list takes none.
    """
    document = read_json(path)
    if not is_locomo(document):
        if sample_id is not None:
            raise ConversationFormatError(
                f"{path} is a plain list of messages, not LoCoMo: drop the sample {sample_id!r}"
            )
        return turns_from_messages(document, str(path))
    conversations = locomo_conversations(document, str(path))
    if sample_id is not None:
        return list(pick_sample(conversations, sample_id, str(path)).turns)
    if len(conversations) == 1:
        return list(conversations[0].turns)
    known = ", ".join(c.sample_id for c in conversations)
    raise ConversationFormatError(
        f"{path} holds {len(conversations)} LoCoMo conversations: pick one (--sample): {known}"
    )


def _conversation(sample: dict[str, Any], where: str) -> LocomoConversation:
    conversation = sample["conversation"]
    if not isinstance(conversation, dict):
        raise ConversationFormatError(f"{where}.conversation must be an object of sessions")
    sample_id = str(sample.get("sample_id", where))
    sessions = sorted(
        (int(match.group(1)), key)
        for key in conversation
        if (match := _SESSION.fullmatch(key)) is not None
    )
    turns: list[Turn] = []
    dia_ids: list[str] = []
    for number, key in sessions:
        session = conversation[key]
        if not isinstance(session, list):
            raise ConversationFormatError(f"{sample_id}.{key} must be a list of turns")
        when = conversation.get(f"{key}_date_time")
        timestamp = parse_session_time(when) if isinstance(when, str) else None
        for position, turn in enumerate(session):
            if not (
                isinstance(turn, dict)
                and isinstance(turn.get("speaker"), str)
                and isinstance(turn.get("text"), str)
            ):
                raise ConversationFormatError(
                    f"{sample_id}.{key}[{position}] must be an object with string "
                    "'speaker' and 'text'"
                )
            turns.append(Turn(role=turn["speaker"], content=turn["text"], timestamp=timestamp))
            dia_ids.append(str(turn.get("dia_id", f"D{number}:{position + 1}")))
    if not turns:
        raise ConversationFormatError(f"{sample_id} has no session_N lists of turns")
    qa = sample.get("qa", [])
    if not isinstance(qa, list):
        raise ConversationFormatError(f"{sample_id}.qa must be a list of questions")
    return LocomoConversation(
        sample_id=sample_id,
        speakers=(
            str(conversation.get("speaker_a", turns[0].role)),
            str(conversation.get("speaker_b", "")),
        ),
        turns=tuple(turns),
        dia_ids=tuple(dia_ids),
        questions=tuple(_question(q, f"{sample_id}.qa[{i}]") for i, q in enumerate(qa)),
    )


def _question(item: Any, where: str) -> LocomoQuestion:
    if not isinstance(item, dict) or not isinstance(item.get("question"), str):
        raise ConversationFormatError(f"{where} must be an object with a string 'question'")
    answer = item.get("answer")
    adversarial = item.get("adversarial_answer")
    return LocomoQuestion(
        question=item["question"],
        answer=None if answer is None else str(answer),
        # A few entries hold two ids ("D8:6; D9:17"): split them.
        evidence=tuple(
            part.strip()
            for entry in item.get("evidence", [])
            for part in str(entry).split(";")
            if part.strip()
        ),
        category=int(item.get("category", 0)),
        adversarial_answer=None if adversarial is None else str(adversarial),
    )
