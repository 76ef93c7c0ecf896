"""What one experiment measures, as plain records that serialize straight to ``results.json``."""

from __future__ import annotations

from dataclasses import dataclass, field

#: A turn counts as recalled when the probe's reading of its page contains it at this
#: :func:`~optical_memory.experiments.similarity.substring_similarity` or more.
RECALL_THRESHOLD = 0.9
#: Vision-token targets the experiment reports (DeepSeek-OCR's first: its modes are the pages').
TARGETS = ("deepseek-ocr", "openai", "anthropic", "qwen2.5-vl")


@dataclass
class PageAtMode:
    """One page drawn at one mode: what it costs each target and how much of it a probe reads.

    ``compression[t]`` is ``text_tokens / vision_tokens[t]``: text tokens per vision token.
    ``expected_precision`` is what DeepSeek-OCR itself is expected to decode of the page: its
    Fox precision at the page's text tokens
    (:func:`optical_memory.legibility.expected_precision`; None at modes the paper's table does
    not measure).
    """

    mode: str
    width: int
    height: int
    vision_tokens: dict[str, int]
    compression: dict[str, float]
    probe_accuracy: float
    expected_precision: float | None = None


@dataclass
class PageResult:
    """One frozen page of a conversation's memory, measured at every mode of the run.

    ``index`` counts pages from the oldest (0); ``age`` from the newest (0) once the whole
    conversation has been added; ``scheduled_mode`` is the mode the default schedule gives that
    age (None: forgotten; "text": shown as text by the memory's profitability gate).
    ``turns`` names the turns printed on it, wholly or in part (LoCoMo ``dia_id``, or ``T<n>``
    for the synthetic dialogue's turn ``n``); ``characters`` counts its exact text.
    """

    index: int
    age: int
    scheduled_mode: str | None
    text_tokens: int
    characters: int
    turns: list[str]
    modes: dict[str, PageAtMode]


@dataclass
class EvidenceResult:
    """One evidence turn of one question, looked up on its page.

    ``similarity[mode]`` is how well the probe's reading of the page at ``mode`` contains the
    turn's text; the turn is recalled at ``mode`` when it is at least :data:`RECALL_THRESHOLD`.
    """

    sample_id: str
    question: int
    category: int
    dia_id: str
    page: int
    age: int
    scheduled_mode: str | None
    similarity: dict[str, float]

    def recalled(self, mode: str) -> bool:
        return self.similarity[mode] >= RECALL_THRESHOLD


@dataclass
class ContextPoint:
    """Tokens an agent's context holds after ``turns`` turns, three ways of remembering."""

    turns: int
    optical: int
    full_text: int
    window: int


@dataclass
class ConversationResult:
    sample_id: str
    turns: int
    text_tokens: int
    questions: int
    pages: list[PageResult]
    evidence: list[EvidenceResult]
    #: Evidence turns still in the context as text at the end (recent window, unpacked tail).
    evidence_in_text: int = 0
    #: Evidence ids that name no turn of the conversation (LoCoMo has a few typos).
    unresolved_evidence: list[str] = field(default_factory=list)
    context: list[ContextPoint] = field(default_factory=list)
