"""One options object: every entry point checks a bad value the same way, and a tuning value
changes what the user sees where it should."""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from recording_model import RecordingChatModel

from optical_memory import OpticalMemory
from optical_memory.agents import MemoryOptions, OpticalMemoryMiddleware, Tuning, wrap
from optical_memory.agents.calibration import ImageCostTable, SentImage
from optical_memory.agents.recall import recall_memory_tool
from optical_memory.modes import Mode
from optical_memory.options import OptionValues
from optical_memory.schedule import DecaySchedule
from optical_memory.store.ranking import Ranking

# (field, bad value, exception, what the message says): one row per validation rule.
BAD_OPTIONS = [
    ("keep_recent_turns", 0, ValueError, "keep_recent_turns must be an int >= 1, not 0"),
    ("keep_recent_turns", True, ValueError, "keep_recent_turns must be an int >= 1, not True"),
    ("keep_recent_turns", "6", ValueError, "keep_recent_turns must be an int >= 1, not '6'"),
    ("budget_tokens", 0, ValueError, "budget_tokens must be positive or None, not 0"),
    ("budget_tokens", 1.5, TypeError, "budget_tokens must be an int or None, not 1.5"),
    ("target", "gpt-9", ValueError, "unknown target 'gpt-9': choose one of"),
    ("register_recall_tool", "yes", TypeError, "register_recall_tool must be None, True or"),
    ("calibrate", "no", TypeError, "calibrate must be True or False, not 'no'"),
    ("render_ahead", 1, TypeError, "render_ahead must be True or False, not 1"),
    ("request_limits", 64, TypeError, "request_limits must be a RequestLimits or None, not 64"),
    ("cache_control", 5, TypeError, "cache_control must be 'auto', None or a dict"),
    ("image_cache_bytes", -1, ValueError, "image_cache_bytes must be an int >= 0, not -1"),
    ("verbatim_tokens", -1, ValueError, "verbatim_tokens must be an int >= 0, not -1"),
    ("tuning", {"max_threads": 2}, TypeError, "tuning must be a Tuning, not dict"),
    ("colour", "blue", TypeError, "unknown option(s) colour: the options are budget_tokens"),
]

BAD_TUNING = [
    ("ranking", "bm25", TypeError, "Tuning.ranking must be a Ranking, not str"),
    ("candidates", 0, ValueError, "Tuning.candidates must be an int >= 1, not 0"),
    ("knapsack_cells", 0, ValueError, "Tuning.knapsack_cells must be an int >= 1, not 0"),
    ("max_recalled_turns", 0, ValueError, "Tuning.max_recalled_turns must be an int >= 1, not 0"),
    ("max_threads", 2.0, ValueError, "Tuning.max_threads must be an int >= 1, not 2.0"),
    ("calibration_window", 2, ValueError, "Tuning.calibration_window must be an int >= 3, not 2"),
    ("url_image_size", (0, 512), ValueError, "Tuning.url_image_size must be (width, height)"),
    ("url_image_size", (512,), ValueError, "Tuning.url_image_size must be (width, height)"),
    ("calibration_max_step", 0, ValueError, "Tuning.calibration_max_step must be a finite"),
    ("calibration_outlier", math.inf, ValueError, "Tuning.calibration_outlier must be a finite"),
]


def _through_options(name: str, value: Any) -> None:
    MemoryOptions.of(None, {name: value})


def _through_memory(name: str, value: Any) -> None:
    OpticalMemory(None, **{name: value})


def _through_middleware(name: str, value: Any) -> None:
    OpticalMemoryMiddleware(OpticalMemory(None), **{name: value})


def _through_wrap(name: str, value: Any) -> None:
    wrap(OpticalMemory(None), RecordingChatModel(messages=iter([])), **{name: value})


ENTRIES = [_through_options, _through_memory, _through_middleware, _through_wrap]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda entry: entry.__name__[9:])
@pytest.mark.parametrize(("name", "bad", "error", "says"), BAD_OPTIONS)
def test_a_bad_option_is_one_clear_error_naming_it_at_every_entry(
    entry: Any, name: str, bad: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as raised:
        entry(name, bad)
    assert str(raised.value).startswith(says)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("name", "bad", "error", "says"), BAD_TUNING)
def test_a_bad_tuning_value_is_one_clear_error_naming_it(
    name: str, bad: Any, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as raised:
        Tuning(**{name: bad})  # before any memory or agent sees it
    assert str(raised.value).startswith(says)
    assert "\n" not in str(raised.value)


def test_bad_options_leave_a_stored_thread_whole(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with OpticalMemory(path, keep_recent_turns=2) as memory:
        for n in range(8):
            memory.add("user", f"Turn {n} of the inventory: crate {n * 11} on shelf {n}.")
    with pytest.raises(ValueError, match="keep_recent_turns"):
        OpticalMemory(path, keep_recent_turns=-3)
    with OpticalMemory(path, keep_recent_turns=2) as memory:
        assert [turn.content[:6] for turn in memory.turns(1, 8)] == [f"Turn {n}" for n in range(8)]


def test_keywords_override_the_options_object() -> None:
    options = MemoryOptions(keep_recent_turns=2, verbatim_tokens=0)
    with OpticalMemory(None, options=options, keep_recent_turns=4) as memory:
        for n in range(40):
            note = f"Message {n}: ferry ticket FX{n:04d} leaves pier {n} at {n + 6} o'clock. "
            memory.add("user", note * 6)
        context = memory.context()
        on_pages = {
            turn_id for page in memory.store.pages(memory.thread_id) for turn_id in page.turn_ids
        }
        assert on_pages, "older turns are on pages"
        newest = [turn.id for turn in context.recent][-4:]
        assert len(newest) == 4 and not on_pages & set(newest)  # the 4 newest stay text
        assert all(page.verbatim == "" for page in context.pages)  # the object's other field
    assert options.keep_recent_turns == 2  # the caller's object is not changed


def test_keyword_names_are_the_options_fields() -> None:
    assert set(get_type_hints(OptionValues)) == {f.name for f in dataclasses.fields(MemoryOptions)}


def _recalled_turns(answer: str) -> list[str]:
    return [line.split()[0] for line in answer.splitlines() if line.startswith("#")]


def test_max_recalled_turns_is_how_many_turns_the_recall_tool_returns() -> None:
    with OpticalMemory(None, tuning=Tuning(max_recalled_turns=3)) as memory:
        for n in range(10):
            memory.add("user", f"Note {n}: the lock code is {1000 + n}.")
        answer = recall_memory_tool(memory).invoke({"turn": 2, "last_turn": 9})
        assert _recalled_turns(answer) == ["#2", "#3", "#4"]
        assert answer.endswith("[cut at 3 turns: ask again from turn 5]")
        whole = recall_memory_tool(OpticalMemory(memory.store)).invoke({"turn": 2, "last_turn": 9})
        assert _recalled_turns(whole) == [f"#{n}" for n in range(2, 10)]


def test_the_middleware_s_tuning_reaches_its_recall_tool() -> None:
    memory = OpticalMemory(None)
    for n in range(10):
        memory.add("user", f"Note {n}: the lock code is {1000 + n}.")
    middleware = OpticalMemoryMiddleware(memory, tuning=Tuning(max_recalled_turns=4))
    answer = middleware.tools[0].invoke({"turn": 1, "last_turn": 10})
    assert _recalled_turns(answer) == ["#1", "#2", "#3", "#4"]
    middleware.close()


def _image_by_url() -> HumanMessage:
    return HumanMessage(
        content=[
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.org/harbour.png"}},
        ]
    )


@pytest.mark.parametrize(
    ("size", "tokens"),
    # OpenAI's published rule for GPT-4o: 85 + 170 per 512-px tile (a side over 768 px shrunk
    # to 768): 512x512 is one tile, 1024x1024 becomes 768x768, four tiles.
    [(None, 85 + 170 * 4), ((512, 512), 85 + 170), ((1024, 2048), 85 + 170 * 6)],
)
def test_an_image_given_by_url_is_priced_at_the_tuned_size(
    size: tuple[int, int] | None, tokens: int
) -> None:
    tuning = Tuning() if size is None else Tuning(url_image_size=size)
    model = RecordingChatModel(messages=iter(["a harbour"]))
    chat = wrap(OpticalMemory(None), model, target="openai", tuning=tuning, calibrate=False)
    chat.invoke([_image_by_url()], {"configurable": {"thread_id": "t"}})
    assert chat.usage[-1].vision_tokens == tokens


def test_max_threads_is_how_many_conversations_the_agent_holds_open() -> None:
    model = RecordingChatModel(messages=iter([f"noted {n}" for n in range(5)]))
    middleware = OpticalMemoryMiddleware(OpticalMemory(None), tuning=Tuning(max_threads=2))
    agent = create_agent(model, [], middleware=[middleware])
    for n in range(5):
        agent.invoke(
            {"messages": [HumanMessage(f"Conversation {n} opens.")]},
            {"configurable": {"thread_id": f"c{n}"}},
        )
    assert middleware.builder.open_threads == 2
    assert middleware.memory("c0").store.count_turns("c0") == 2  # let go, never lost
    middleware.close()


def test_the_calibration_window_is_how_many_bills_are_kept() -> None:
    memory = OpticalMemory(None)
    image = SentImage(640, 640, None)
    tables = {
        window: ImageCostTable(
            memory.store, "openai", f"m{window}", Tuning(calibration_window=window)
        )
        for window in (3, 48)
    }
    for table in tables.values():
        for n in range(6):
            assert table.observe([image], 900 + n, text=100, chars=400, messages=1)
    assert (tables[3].bills, tables[48].bills) == (3, 6)


def test_tuning_is_one_frozen_value_with_the_ranking_inside() -> None:
    tuning = Tuning(ranking=Ranking(phrase=2.0))
    assert tuning.ranking.phrase == 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        tuning.max_threads = 3  # type: ignore[misc]
    assert MemoryOptions(tuning=tuning).tuning is tuning


def test_the_calibration_step_bounds_how_fast_a_learnt_image_cost_moves() -> None:
    # A provider billing twice OpenAI's published 765 tokens (85 + 170 * 4 tiles) for 640x640.
    billed_per_image = 2 * 765
    memory = OpticalMemory(None)
    learnt: dict[float, list[int]] = {}
    for step in (0.08, 1.0):
        table = ImageCostTable(
            memory.store, "openai", f"m{step}", Tuning(calibration_max_step=step)
        )
        learnt[step] = []
        for n in range(8):
            images, text = 1 + n % 3, 100 + 10 * n
            bill = text + images * billed_per_image
            table.observe(
                [SentImage(640, 640, None)] * images, bill, text=text, chars=400, messages=1
            )
            learnt[step].append(table.cost(640, 640))
    slow = [765, *learnt[0.08]]
    assert all(after <= before * 1.08 + 1 for before, after in itertools.pairwise(slow))
    assert learnt[0.08][-1] < 0.85 * billed_per_image
    assert learnt[1.0][-1] > 0.95 * billed_per_image


def test_a_coarser_planning_table_shows_fewer_pages_within_the_same_budget() -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 2), (Mode.SMALL, 4), (Mode.TINY, 8)], batch=1)
    # DeepSeek-OCR's published vision tokens per page, and a share of the text read at each.
    cost = {Mode.BASE: 256, Mode.SMALL: 100, Mode.TINY: 64}
    read = {Mode.BASE: 1.0, Mode.SMALL: 0.9, Mode.TINY: 0.5}

    def plan(cells: int) -> list[Mode | None]:
        fit = schedule.fit(
            12,
            lambda _, mode: cost[mode],
            [10],
            1100,
            lambda _, mode: read[mode],
            knapsack_cells=cells,
        )
        assert fit.total <= 1100
        return fit.modes

    fine, coarse = plan(Tuning().knapsack_cells), plan(4)
    assert sum(mode is not None for mode in fine) == 12
    assert sum(mode is not None for mode in coarse) == 8


def test_a_ranking_weight_in_the_tuning_changes_which_turn_search_finds_first(
    store_location: str,
) -> None:
    turns = [
        ("user", "Which green tea should I buy for the office?"),
        ("assistant", "A sencha is a fine green tea for an office."),
    ]
    firsts = []
    for weight in (0.2, 5.0):  # the assistant's turns weigh less, then more
        tuning = Tuning(ranking=dataclasses.replace(Ranking(), assistant=weight))
        with OpticalMemory(store_location, thread_id=f"tea-{weight}", tuning=tuning) as memory:
            for role, content in turns:
                memory.add(role, content)
            firsts.append(memory.search("green tea office", limit=2)[0].turn.role)
    assert firsts == ["user", "assistant"]


def test_the_agent_layer_takes_the_memory_s_own_options_unless_given_others() -> None:
    def turns_sent_as_text(keep: int, **given: Any) -> int:
        memory = OpticalMemory(None, thread_id="t", keep_recent_turns=keep)
        model = RecordingChatModel(messages=iter(["ok"]))
        history = [HumanMessage(f"Note {n}: " + "the tide came in slowly " * 60) for n in range(30)]
        wrap(memory, model, **given).invoke(history, {"configurable": {"thread_id": "t"}})
        return sum(1 for message in model.requests[-1] if str(message.content).startswith("Note "))

    # The memory's own keep_recent_turns, not the agents' default of six...
    assert turns_sent_as_text(2) == turns_sent_as_text(6, keep_recent_turns=2)
    assert turns_sent_as_text(2) < turns_sent_as_text(2, keep_recent_turns=6)
    # ...and a keyword still wins over it.
    assert turns_sent_as_text(9) == turns_sent_as_text(2, keep_recent_turns=9)
