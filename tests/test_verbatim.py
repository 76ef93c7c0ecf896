"""Exact values go with their page as text: picked out, bounded, fixed at freeze, sent."""

from __future__ import annotations

import random
import string
from pathlib import Path

import pytest

from optical_memory import DecaySchedule, Mode, OpticalMemory
from optical_memory.memory import packing
from optical_memory.tokens import get_encoding
from optical_memory.verbatim import VERBATIM_LEAD, exact_values, verbatim_text

LOOKALIKES = "0O1lI5S8B"


def planted(rng: random.Random) -> dict[str, str]:
    """One value of each kind a reader misreads, drawn fresh (kind: value)."""
    code = "".join(rng.choice(LOOKALIKES + "KH7") for _ in range(9))
    return {
        "code": f"{code[:4]}-{code[4:]}",
        "slack id": "U0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8)),
        "hex": "".join(rng.choice("0123456789abcdef") for _ in range(11)) + rng.choice("abcdef"),
        "amount": f"${rng.randint(1, 99)},{rng.randint(100, 999)}.{rng.randint(10, 99)}",
        "phone": f"+1 ({rng.randint(200, 989)}) 555-{rng.randint(1000, 9999)}",
        "url": f"https://tickets.example.org/r/{rng.randint(10000, 99999)}",
        "email": f"ana.{rng.randint(10, 99)}@mail.example.com",
        "date": f"{rng.randint(1, 28)}/{rng.randint(1, 12)}/20{rng.randint(10, 39)}",
    }


def test_every_kind_of_exact_value_is_picked_out_of_prose_and_punctuation() -> None:
    rng = random.Random(7)
    for _ in range(40):
        values = planted(rng)
        sentence = " ".join(
            f"my {kind} is {value}{rng.choice(['.', ',', '!', ''])}"
            for kind, value in values.items()
        )
        quoted = f'(see "{values["code"]}")'
        found = exact_values(f"{sentence} {quoted}")
        assert set(values.values()) <= set(found), (values, found)
        assert len(found) == len(set(found))  # each value once


def test_prose_and_short_numbers_are_left_to_the_image() -> None:
    prose = (
        "Melanie: Wow, that's great! I took the 2 kids to the beach at 10 and we swam for an hour; "
        "NASA says the tide was high (really!). Honestly it was the best day of 2 weeks."
    )
    assert exact_values(prose) == []
    assert verbatim_text([prose]) == ""


def test_hostile_text_gives_a_bounded_text_and_no_error() -> None:
    enc = get_encoding()
    many = " ".join(f"ID{n:06d}X" for n in range(5000))
    text = verbatim_text([many, "\x00\x01\ud800 binary \ufffd", "", " " * 1000], max_tokens=64)
    assert len(enc.encode(text)) <= 64
    assert text.startswith(VERBATIM_LEAD)
    assert "ID000000X" in text  # page order: the first values are kept
    assert verbatim_text(["ID000001X"], max_tokens=3) == ""  # too small for even one value


def test_codes_are_kept_before_plain_numbers_when_the_bound_bites() -> None:
    numbers = " ".join(str(1000 + n) for n in range(200))
    text = verbatim_text([f"{numbers} and the code K8H2-O0lI"], max_tokens=24)
    assert "K8H2-O0lI" in text
    assert "1000" in text  # what room is left goes to the numbers, in page order


def _fill(memory: OpticalMemory, rng: random.Random, turns: int) -> list[str]:
    codes = []
    for n in range(turns):
        code = planted(rng)["code"]
        codes.append(code)
        memory.add("user", f"Reminder {n}: the locker code is {code}. " + "We walked on. " * 80)
    return codes


def test_pages_carry_their_codes_and_the_context_counts_them(tmp_path: Path) -> None:
    enc = get_encoding()
    with OpticalMemory(tmp_path / "m.db", keep_recent_turns=2) as memory:
        codes = _fill(memory, random.Random(3), 80)
        context = memory.context()
        assert context.pages
        for page in context.pages:
            printed = memory.recall(page.page_id)
            on_page = [code for code in codes if code in printed]
            assert on_page and all(code in page.verbatim for code in on_page)
            assert page.verbatim_tokens == len(enc.encode(page.verbatim)) <= 64
        recent = sum(len(enc.encode(f"{t.role}: {t.content}")) for t in context.recent)
        verbatim = sum(len(enc.encode(page.verbatim)) for page in context.pages)
        assert context.text_tokens == recent + verbatim


def test_verbatim_text_is_fixed_when_the_page_is_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.db"
    with OpticalMemory(path, keep_recent_turns=2) as memory:
        _fill(memory, random.Random(5), 40)
        before = {p.page_id: p.verbatim for p in memory.context().pages}
    # A later version picks values differently: frozen pages keep what they were sent with.
    monkeypatch.setattr(packing, "verbatim_text", lambda texts, max_tokens: "changed")
    with OpticalMemory(path, keep_recent_turns=2) as memory:
        _fill(memory, random.Random(6), 40)
        after = {p.page_id: p.verbatim for p in memory.context().pages}
    assert before and all(after[page_id] == text for page_id, text in before.items())
    assert "changed" in after.values()  # pages frozen since get the new text


def test_verbatim_can_be_turned_off_and_rejects_bad_bounds() -> None:
    with OpticalMemory(None, keep_recent_turns=2, verbatim_tokens=0) as memory:
        _fill(memory, random.Random(3), 40)
        context = memory.context()
        assert context.pages and all(p.verbatim == "" for p in context.pages)
        assert context.text_tokens == sum(
            len(get_encoding().encode(f"{t.role}: {t.content}")) for t in context.recent
        )
    for bad in (-1, 2.5, True, "64"):
        with pytest.raises(ValueError, match="verbatim_tokens must be an int >= 0"):
            OpticalMemory(None, verbatim_tokens=bad)  # type: ignore[arg-type]


def test_a_budget_counts_the_verbatim_tokens() -> None:
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 4), (Mode.TINY, 8)], batch=1)
    with OpticalMemory(None, keep_recent_turns=2, schedule=schedule) as memory:
        _fill(memory, random.Random(9), 120)
        free = memory.context()
        budget = free.total_tokens - 40
        fitted = memory.context(budget)
        assert fitted.total_tokens <= budget
        assert fitted.text_tokens >= sum(p.verbatim_tokens for p in fitted.pages) > 0


def test_the_agent_request_puts_each_pages_values_right_after_its_image() -> None:
    pytest.importorskip("langchain")
    from agent_conversation import read_request
    from langchain_core.messages import HumanMessage

    from optical_memory.agents.request import MemoryRequestBuilder

    memory = OpticalMemory(None, keep_recent_turns=2)
    codes = _fill(memory, random.Random(11), 60)
    request, _ = MemoryRequestBuilder(memory).build(None, [HumanMessage("which locker code?")])
    blocks = request[0].content_blocks
    sent = read_request(request)
    assert sent.pages
    images = [i for i, block in enumerate(blocks) if block["type"] == "image"]
    assert len(images) == len(sent.pages)
    for index, page in zip(images, sent.pages, strict=True):
        follower = blocks[index + 1]
        assert follower["type"] == "text"
        assert str(follower["text"]).startswith(VERBATIM_LEAD)
        printed = memory.recall(page.page_id)
        assert all(code in str(follower["text"]) for code in codes if code in printed)


def test_a_store_that_refuses_the_verbatim_text_still_sends_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from optical_memory.store import StoreError

    caplog.set_level("WARNING", logger="optical_memory")
    with OpticalMemory(None, keep_recent_turns=2) as memory:

        def refuse(*args: object) -> None:
            raise StoreError("disk full")

        monkeypatch.setattr(memory.store, "put_blob", refuse)
        codes = _fill(memory, random.Random(13), 40)
        context = memory.context()
        assert context.pages
        sent = " ".join(page.verbatim for page in context.pages)
        on_pages = [c for c in codes if any(c in memory.recall(p.page_id) for p in context.pages)]
        assert on_pages and all(code in sent for code in on_pages)
        assert "not stored (disk full)" in caplog.text
        assert len(memory.turns(1, 40)) == 40  # nothing stored was lost


def test_deleting_a_thread_leaves_none_of_its_values_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    with OpticalMemory(path, keep_recent_turns=2) as memory:
        codes = _fill(memory, random.Random(17), 40)
        assert any(page.verbatim for page in memory.context().pages)
        memory.delete_thread()
    data = path.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("m.db-")
    )
    assert not any(code.encode() in data for code in codes)
