"""Long-dialog experiment: replay conversations into :class:`OpticalMemory` and measure its pages.

For each conversation (LoCoMo, or the demo's synthetic dialogue) the turns are added one by one
to a memory with the default settings (packing, schedule, recent window); along the way the
context's size is recorded next to a full text history and a keep-last-N window. Then every
frozen page is drawn at every mode of the run, read back by the probe, and measured: text tokens
it replaces, vision tokens per target, their ratio, the probe's character accuracy, and beside
it the expected model precision (DeepSeek-OCR's own Fox precision at the page's text tokens,
TINY and SMALL: :mod:`optical_memory.legibility`). Each LoCoMo question's evidence turns are
looked up on their pages and count as recalled at a mode when the probe's reading contains them
at substring similarity ≥ 0.9.

Choices made here, recorded in the report too:

- *A turn's page.* A long turn may be split over two pages; its *home page* is the one holding
  most of its characters (its age is that page's age), and its similarity at a mode is over all
  its pieces: ``1 - sum of piece distances / sum of piece lengths``, each piece matched against
  the reading of the page it is printed on.
- *The tail.* Turns still in the context as text when the conversation ends (the recent window,
  and the turns that do not fill a page yet) are on no page: they are counted as
  ``evidence_in_text`` and left out of the per-mode recall (they are read verbatim).
- *Age.* Pages old, newest page 0, when the whole conversation has been added; the mode the
  default schedule gives that age is the page's scheduled mode ("text" when the memory's
  profitability gate shows the page as text: then its turns are recalled verbatim).
- *Evidence ids.* LoCoMo has a few malformed ones: ``"D8:6; D9:17"`` is read as two turns,
  ``"D:11:26"`` as ``D11:26``; ids that name no turn are counted as unresolved.
- With ``limit``, a conversation is cut after ``limit`` turns and only the questions whose
  evidence all lies in those turns are kept.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optical_memory.experiments.ocr import normalize_whitespace
from optical_memory.experiments.probe import PageJob, Probe, ProbePool, RendererSpec
from optical_memory.experiments.records import (
    TARGETS,
    ContextPoint,
    ConversationResult,
    EvidenceResult,
    PageAtMode,
    PageResult,
)
from optical_memory.experiments.report import write_report
from optical_memory.experiments.retrieval import locomo_retrieval
from optical_memory.experiments.similarity import page_accuracy, substring_distance
from optical_memory.experiments.summary import summarize
from optical_memory.legibility import expected_precision
from optical_memory.memory import OpticalMemory
from optical_memory.modes import Mode
from optical_memory.renderers.layout import chosen_density
from optical_memory.renderers.page import page_size
from optical_memory.schedule import DecaySchedule
from optical_memory.targets import vision_tokens
from optical_memory.tokens import cache_dir, count_text_tokens
from optical_memory.turns import Turn, turn_text

#: Turns of the synthetic dialogue (the demo's generator, seed 0).
SYNTHETIC_TURNS = 300
#: LoCoMo category given to the synthetic dialogue's planted-fact questions (single-hop).
SYNTHETIC_CATEGORY = 4
#: The modes the paper's Fox table measured (64 and 100 vision tokens): the experiment reports
#: an expected model precision only there.
FOX_MODES = (Mode.TINY, Mode.SMALL)
#: The keep-last-N baseline of the context plot.
WINDOW_TURNS = 40
#: Points per conversation on the context curve.
CONTEXT_POINTS = 50
_EVIDENCE_ID = re.compile(r"D:?(\d+):(\d+)")


@dataclass(frozen=True)
class Question:
    index: int
    category: int
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Dialog:
    """A conversation to replay: turns, each turn's name (LoCoMo ``dia_id``), questions."""

    sample_id: str
    turns: tuple[Turn, ...]
    names: tuple[str, ...]
    questions: tuple[Question, ...]
    #: Evidence ids of the kept questions that name no turn.
    unresolved: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExperimentSettings:
    """One run. ``data`` is a LoCoMo file or ``"synthetic"``; ``samples`` picks conversations
    (None: all); ``limit`` cuts each conversation after that many turns."""

    data: str
    out: Path
    samples: tuple[str, ...] | None = None
    renderer: str = "pil"
    probe: str = "tesseract"
    modes: tuple[Mode, ...] = tuple(Mode)
    limit: int | None = None
    workers: int = 2
    window_turns: int = WINDOW_TURNS
    cache: Path | None = None
    progress: bool = True
    command: str = ""

    def probe_cache(self) -> Path:
        return self.cache or cache_dir() / "probe"


@dataclass
class ExperimentResult:
    settings: dict[str, Any]
    timing: dict[str, float]
    summary: dict[str, Any]
    conversations: list[ConversationResult] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)


# --- data --------------------------------------------------------------------------------------


def evidence_ids(raw: str) -> list[str]:
    """``"D8:6; D9:17"`` → ``["D8:6", "D9:17"]``; ``"D:11:26"`` → ``["D11:26"]``; an id with no
    ``D<session>:<turn>`` in it is returned as it is (and will name no turn)."""
    found = [f"D{int(s)}:{int(t)}" for s, t in _EVIDENCE_ID.findall(raw)]
    return found or [raw]


def load_dialogs(
    data: str, samples: Sequence[str] | None = None, limit: int | None = None
) -> list[Dialog]:
    """The conversations of ``data`` (a LoCoMo file, or ``"synthetic"``), cut to ``limit`` turns."""
    if data == "synthetic":
        dialogs = [_synthetic_dialog()]
    else:
        from optical_memory.experiments.locomo import read_locomo

        dialogs = [_locomo_dialog(c) for c in read_locomo(data)]
    if samples:
        known = {d.sample_id for d in dialogs}
        missing = [s for s in samples if s not in known]
        if missing:
            raise ValueError(
                f"{data} has no sample {', '.join(missing)}: choose from {', '.join(sorted(known))}"
            )
        dialogs = [d for d in dialogs if d.sample_id in samples]
    return [_cut(d, limit) for d in dialogs] if limit is not None else dialogs


def _synthetic_dialog() -> Dialog:
    from optical_memory.experiments.synthetic import generate_dialogue

    dialogue = generate_dialogue(SYNTHETIC_TURNS, seed=0)
    return Dialog(
        sample_id="synthetic-0",
        turns=tuple(Turn(role=role, content=content) for role, content in dialogue.turns),
        names=tuple(f"T{index}" for index in range(len(dialogue.turns))),
        questions=tuple(
            Question(i, SYNTHETIC_CATEGORY, (f"T{fact.turn}",))
            for i, fact in enumerate(dialogue.facts)
        ),
    )


def _locomo_dialog(conversation: Any) -> Dialog:
    names = tuple(evidence_ids(d)[0] for d in conversation.dia_ids)
    return Dialog(
        sample_id=conversation.sample_id,
        turns=tuple(conversation.turns),
        names=names,
        questions=tuple(
            Question(i, q.category, tuple(e for raw in q.evidence for e in evidence_ids(raw)))
            for i, q in enumerate(conversation.questions)
        ),
    )


def _cut(dialog: Dialog, limit: int) -> Dialog:
    if limit < 1:
        raise ValueError(f"limit must be at least 1 turn, not {limit}")
    kept_names = set(dialog.names[:limit])
    every_name = set(dialog.names)
    questions = tuple(
        q
        for q in dialog.questions
        if all(e in kept_names or e not in every_name for e in q.evidence)
        and any(e in kept_names for e in q.evidence)
    )
    return Dialog(dialog.sample_id, dialog.turns[:limit], dialog.names[:limit], questions)


# --- one conversation --------------------------------------------------------------------------


@dataclass
class _Built:
    """A conversation replayed into memory, its pages not yet read."""

    dialog: Dialog
    memory: OpticalMemory
    context: list[ContextPoint]
    text_tokens: int
    names_by_id: dict[int, str]


def _replay(dialog: Dialog, spec: RendererSpec, window: int) -> _Built:
    memory = OpticalMemory(None, thread_id=dialog.sample_id, renderer=spec.build())
    step = max(1, len(dialog.turns) // CONTEXT_POINTS)
    costs: list[int] = []
    names_by_id: dict[int, str] = {}
    points: list[ContextPoint] = []
    for number, (turn, name) in enumerate(zip(dialog.turns, dialog.names, strict=True), start=1):
        stored = memory.add(turn.role, turn.content, timestamp=turn.timestamp)
        assert stored.id is not None
        names_by_id[stored.id] = name
        costs.append(count_text_tokens(turn_text(turn.role, turn.content)))
        if number % step == 0 or number == len(dialog.turns):
            points.append(
                ContextPoint(
                    turns=number,
                    optical=memory.context().total_tokens,
                    full_text=sum(costs),
                    window=sum(costs[-window:]),
                )
            )
    return _Built(dialog, memory, points, sum(costs), names_by_id)


def _measure(
    built: _Built, spec: RendererSpec, modes: Sequence[Mode], probe: Probe
) -> tuple[list[PageJob], Callable[[dict[str, str]], ConversationResult]]:
    """The probe jobs of one conversation, and how to turn their readings into its result."""
    memory, dialog = built.memory, built.dialog
    records = memory.store.pages(memory.thread_id)
    settings_key = memory.renderer.settings_key
    context = memory.context()
    scheduled: dict[int, str | None] = {record.id: None for record in records}
    for page in context.pages:
        scheduled[page.page_id] = page.mode.value
    for text_page in context.text_pages:
        scheduled[text_page.page_id] = "text"
    count = len(records)

    texts = {record.id: memory.recall(record.id) for record in records}

    def key(record: Any, mode: Mode) -> str:
        # By pixel size, not mode name: the renderer draws LARGE and GUNDAM on the same
        # 1280-px canvas, the same image, so the probe reads it once.
        width, height = page_size(mode)
        return f"{record.content_hash}|{width}x{height}|{settings_key}"

    jobs: dict[str, PageJob] = {}
    for record in records:
        for mode in modes:
            page_key = key(record, mode)
            if page_key not in jobs and probe.cached(page_key) is None:
                # Drawn by the memory itself: exactly the image it would put in a context.
                png = memory.page_image(record.id, mode).png()
                jobs[page_key] = PageJob(page_key, png=png)
            elif page_key not in jobs:
                jobs[page_key] = PageJob(page_key)

    # Where each turn is printed: (page index, piece text) per piece; home = most characters.
    contents = {
        turn.id: turn.content
        for turn in memory.store.get_turns(
            memory.thread_id, sorted({t for record in records for t in record.turn_ids})
        )
    }
    printed: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for index, record in enumerate(records):
        for span in record.spans:
            printed[span.turn_id].append((index, contents[span.turn_id][span.start : span.end]))
    id_by_name = {name: turn_id for turn_id, name in built.names_by_id.items()}

    def finish(readings: dict[str, str]) -> ConversationResult:
        reading_of = {
            (index, mode.value): normalize_whitespace(readings[key(record, mode)])
            for index, record in enumerate(records)
            for mode in modes
        }
        page_results = []
        for index, record in enumerate(records):
            measured = {}
            for mode in modes:
                width, height = page_size(mode)
                tokens = {t: vision_tokens(width, height, t, mode) for t in TARGETS}
                measured[mode.value] = PageAtMode(
                    mode=mode.value,
                    width=width,
                    height=height,
                    vision_tokens=tokens,
                    compression={t: record.text_tokens / v for t, v in tokens.items()},
                    probe_accuracy=page_accuracy(texts[record.id], reading_of[(index, mode.value)]),
                    expected_precision=(
                        expected_precision(record.text_tokens, mode) if mode in FOX_MODES else None
                    ),
                )
            page_results.append(
                PageResult(
                    index=index,
                    age=count - 1 - index,
                    scheduled_mode=scheduled[record.id],
                    text_tokens=record.text_tokens,
                    characters=len(texts[record.id]),
                    turns=[built.names_by_id[t] for t in record.turn_ids],
                    modes=measured,
                )
            )

        similarity_memo: dict[int, dict[str, float]] = {}

        def similarity(turn_id: int) -> dict[str, float]:
            if turn_id not in similarity_memo:
                result = {}
                for mode in modes:
                    distance = length = 0
                    for index, piece in printed[turn_id]:
                        needle = normalize_whitespace(piece)
                        distance += substring_distance(needle, reading_of[(index, mode.value)])
                        length += len(needle)
                    result[mode.value] = 1.0 - distance / length if length else 1.0
                similarity_memo[turn_id] = result
            return similarity_memo[turn_id]

        evidence: list[EvidenceResult] = []
        unresolved: list[str] = []
        in_text = 0
        for question in dialog.questions:
            for name in question.evidence:
                turn_id = id_by_name.get(name)
                if turn_id is None:
                    unresolved.append(name)
                    continue
                if turn_id not in printed:
                    in_text += 1  # still text in the context: the recent window or the tail
                    continue
                share: dict[int, int] = defaultdict(int)
                for index, piece in printed[turn_id]:
                    share[index] += len(piece)
                home = max(sorted(share), key=lambda i: share[i])  # ties: the older page
                evidence.append(
                    EvidenceResult(
                        sample_id=dialog.sample_id,
                        question=question.index,
                        category=question.category,
                        dia_id=name,
                        page=home,
                        age=count - 1 - home,
                        scheduled_mode=scheduled[records[home].id],
                        similarity=similarity(turn_id),
                    )
                )
        return ConversationResult(
            sample_id=dialog.sample_id,
            turns=len(dialog.turns),
            text_tokens=built.text_tokens,
            questions=len(dialog.questions),
            pages=page_results,
            evidence=evidence,
            evidence_in_text=in_text,
            unresolved_evidence=unresolved,
            context=built.context,
        )

    return list(jobs.values()), finish


# --- the whole run -----------------------------------------------------------------------------


def renderer_spec(name: str) -> RendererSpec:
    """The renderer of a run: ``pil`` at the density the search chose
    (:func:`optical_memory.renderers.layout.chosen_density`, the Pillow renderer's default
    layout, written out so that the settings travel to worker processes), or another renderer
    by name with its defaults."""
    if name == "pil":
        density = chosen_density()
        return RendererSpec(
            "pil", (("font_size", density.font_size), ("line_spacing", density.line_spacing))
        )
    return RendererSpec(name)


def run_experiment(settings: ExperimentSettings) -> ExperimentResult:
    """Run the experiment and write ``results.json``, the plots and ``report.md`` to
    ``settings.out``."""
    started = time.perf_counter()
    cpu_started = os.times()
    # The forgetting curve reads each evidence page at the mode its age gives it, so the
    # schedule's own modes are measured too, whatever else was asked for.
    scheduled = [Mode.parse(mode) for mode, _ in DecaySchedule().tiers]
    modes = tuple(dict.fromkeys([*(Mode.parse(m) for m in settings.modes), *scheduled]))
    spec = renderer_spec(settings.renderer)
    probe = Probe(settings.probe, settings.probe_cache())
    dialogs = load_dialogs(settings.data, settings.samples, settings.limit)
    if not dialogs:
        raise ValueError(f"{settings.data} holds no conversations")

    tqdm = _progress_bar()
    measured = []
    with ProbePool(probe, settings.workers) as pool:
        # Replay the next conversation while the pool reads the pages of the last ones.
        for dialog in tqdm(dialogs, desc="replaying", unit="conv", disable=not settings.progress):
            built = _replay(dialog, spec, settings.window_turns)
            jobs, finish = _measure(built, spec, modes, probe)
            pool.submit(jobs)
            measured.append((built, jobs, finish))
        replayed = time.perf_counter()
        total = sum(len(jobs) for _, jobs, _ in measured)
        with tqdm(
            total=total, desc="probing pages", unit="page", disable=not settings.progress
        ) as bar:
            readings = pool.readings(progress=bar.update)
    probed = time.perf_counter()
    conversations = [finish(readings) for _, _, finish in measured]
    for built, _, _ in measured:
        built.memory.close()
    first = measured[0][0].memory

    mode_names = [m.value for m in modes]
    tiers = [(Mode.parse(m).value, w) for m, w in first.schedule.tiers]
    summary = summarize(conversations, mode_names, tiers)
    summary["retrieval"] = locomo_retrieval(settings.data, settings.samples)
    out = settings.out
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "data": settings.data,
        "samples": list(settings.samples) if settings.samples else None,
        "renderer": settings.renderer,
        "renderer_settings": first.renderer.settings_key,
        "probe": probe.identity,
        "modes": mode_names,
        "limit": settings.limit,
        "window_turns": settings.window_turns,
        "schedule": tiers,
        "keep_recent_turns": first.keep_recent_turns,
        "command": settings.command,
    }
    finished = time.perf_counter()
    cpu = os.times()
    timing = {
        "seconds": round(finished - started, 1),
        "replay_seconds": round(replayed - started, 1),
        "probe_seconds": round(probed - replayed, 1),
        "pages_probed": total,
        "workers": settings.workers,
        # CPU time of this process and of its finished children (the OCR pool, tesseract):
        # what the run costs whatever else the machine is doing.
        "cpu_seconds": round(sum(cpu[:4]) - sum(cpu_started[:4]), 1),
        "load_average_at_end": round(os.getloadavg()[0], 1),
    }
    files = write_report(out, conversations, summary, {**record, "timing": timing}, mode_names)
    summary["schedule_curve"] = _schedule_curve(out, dialogs, files)
    result = ExperimentResult(
        settings=record,
        timing=timing,
        summary=summary,
        conversations=conversations,
        files={name: path.name for name, path in files.items()},
    )
    results = out / "results.json"
    results.write_text(
        json.dumps(asdict(result), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    result.files["results"] = results.name
    return result


def _schedule_curve(out: Path, dialogs: Sequence[Dialog], files: dict[str, Path]) -> Any:
    """Tokens in context vs expected legibility per schedule: a plot and a report section."""
    from optical_memory.experiments.schedules import write_curve

    rows, section = write_curve(out, dialogs)
    files["schedule_curve"] = out / "schedule_curve.png"
    with files["report"].open("a", encoding="utf-8") as report:
        report.write("\n" + "\n".join(section))
    return rows


def _progress_bar() -> Any:
    """tqdm (on stderr); a disabled bar when ``progress`` is off."""
    from optical_memory.extras import import_extra

    return import_extra("tqdm", "demo").tqdm
