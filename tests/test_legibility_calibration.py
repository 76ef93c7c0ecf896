"""Calibration against the user's model, end to end through langchain-openai and a reading stub."""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path

import pytest

pytest.importorskip("langchain_openai")
if shutil.which("tesseract") is None:
    pytest.skip("the reading stub needs the tesseract program", allow_module_level=True)

from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from reader_stub import reader_stub

from optical_memory import DecaySchedule, Mode, OpticalMemory, renderers
from optical_memory.agents.request import MemoryRequestBuilder
from optical_memory.apps.cli import main
from optical_memory.experiments.legibility_calibration import calibrate
from optical_memory.experiments.needles import make_value
from optical_memory.experiments.readers import ChatModelReader
from optical_memory.legibility import load_calibration
from optical_memory.store import open_store


def stub_model(server: object, name: str = "gpt-4o-reader") -> ChatOpenAI:
    host, port = server.server_address  # type: ignore[attr-defined]
    return ChatOpenAI(
        base_url=f"http://{host}:{port}/v1", model=name, api_key=SecretStr("none"), temperature=0
    )


def test_calibration_measures_the_model_keeps_its_table_and_changes_the_plan(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "m.db")
    with reader_stub() as server:
        reader = ChatModelReader(stub_model(server))
        result = calibrate(
            reader,
            renderers.create("pil"),
            model_key="gpt-4o-reader",
            target="openai",
            modes=[Mode.TINY, Mode.LARGE],
            store=store,
        )
        # What the run cost is what the provider billed, call by call.
        assert reader.calls == len(server.bills) == 8
        assert result.input_tokens == sum(server.bills)
    tiny, large = result.table[Mode.TINY], result.table[Mode.LARGE]
    assert large.character_accuracy > tiny.character_accuracy
    assert tiny.exact_accuracy < 0.5  # look-alike codes at 512 px do not survive
    assert load_calibration(store, "gpt-4o-reader") == result.table

    # The same thread under the same budget, planned with the prior and then with the table:
    # a 512-px page reads far worse than the Fox prior says, so the budget goes to sharp pages.
    schedule = DecaySchedule(tiers=[(Mode.LARGE, 4), (Mode.TINY, 8)], batch=1, half_life=4)
    with OpticalMemory(store, target="openai", schedule=schedule, keep_recent_turns=2) as memory:
        rng = random.Random(1)
        for n in range(400):
            memory.add("user", f"Note {n}: " + " ".join(rng.choices(WORDS, k=70)))
        budget = memory.context().total_tokens // 2
        prior = [page.mode for page in memory.context(budget).memory]
        assert memory.use_calibration("gpt-4o-reader") == result.table
        calibrated = [page.mode for page in memory.context(budget).memory]
        assert calibrated.count(Mode.LARGE) > prior.count(Mode.LARGE)
        assert len(calibrated) < len(prior)  # fewer, older faint pages kept
    store.close()


WORDS = [
    "harbour",
    "boat",
    "tide",
    "wind",
    "sail",
    "chart",
    "island",
    "light",
    "rope",
    "anchor",
    "gull",
    "coast",
]


@pytest.mark.filterwarnings("ignore:no thread_id")
def test_the_agent_request_gives_back_every_code_through_the_reading_stub() -> None:
    """The stub reads each page at its own pixels; what it answers is what it could read."""
    rng = random.Random(5)
    codes = [make_value("look-alike code", rng) for _ in range(4)]

    def answer(verbatim_tokens: int) -> str:
        memory = OpticalMemory(
            None,
            keep_recent_turns=2,
            schedule=DecaySchedule(tiers=[(Mode.SMALL, 1), (Mode.TINY, 1)], batch=1),
            verbatim_tokens=verbatim_tokens,
        )
        for n in range(16):
            code = f" The locker code is {codes[n // 4]}." if n % 4 == 0 else ""
            memory.add("user", f"Entry {n}:{code} " + "We walked on by the water. " * 25)
        with reader_stub() as server:
            model = stub_model(server)
            request, _ = MemoryRequestBuilder(memory).build(
                None, [HumanMessage("Which locker codes?")], model=model
            )
            assert any(block["type"] == "image" for block in request[0].content_blocks)
            return str(model.invoke(request).text)

    guarded = answer(64)
    assert all(code in guarded for code in codes)
    unguarded = answer(0)
    assert sum(code in unguarded for code in codes) < len(codes)


def test_the_calibrate_command_prints_the_table_and_stores_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "m.db"
    assert main(["calibrate", "--model", "tesseract", "--modes", "tiny", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "| tiny | 512x512 |" in out and "exact values as text" in out
    # Billed as OpenAI (tesseract has no family of its own): the sides its pages are now drawn
    # at, no level below the 512 px it was measured at.
    sides = re.search(r"drawn at these sides .*: tiny (\d+) \((\d+)\), small (\d+)", out)
    assert sides is not None and min(int(side) for side in sides.groups()) >= 512
    with open_store(db) as store:
        assert set(load_calibration(store, "tesseract")) == {Mode.TINY}
    assert main(["calibrate", "--model", "tesseract", "--modes", "huge", "--db", str(db)]) == 1
    assert "unknown mode 'huge'" in capsys.readouterr().err
    assert main(["calibrate", "--model", "nonsense:", "--db", str(db)]) == 1
    assert "unknown model" in capsys.readouterr().err
