"""OpticalMemory: packing turns into frozen pages, the context it builds, recall, search, stats.

Tests taking ``store_location`` run on a new SQLite file and on a new PostgreSQL database."""

from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from PIL import Image

from optical_memory import DecaySchedule, MemoryContext, Mode, OpticalMemory, count_text_tokens
from optical_memory.renderers.page import page_size
from optical_memory.renderers.pil import PillowRenderer
from optical_memory.store import StoreError
from optical_memory.turns import turn_text


@pytest.fixture(scope="module")
def renderer() -> PillowRenderer:
    """Large type: 20 lines of about 40 characters, so a page fills within a few turns."""
    return PillowRenderer(font_size=40)


def sentence(index: int, words: int = 30) -> str:
    return f"Turn {index} says " + " ".join(f"w{index}x{k}" for k in range(words))


def fill(memory: OpticalMemory, turns: int, words: int = 30) -> list[int]:
    ids = []
    for index in range(turns):
        role = "user" if index % 2 == 0 else "assistant"
        turn = memory.add(role, sentence(index, words))
        assert turn.id is not None
        ids.append(turn.id)
    return ids


def characters_shown(memory: OpticalMemory, context: MemoryContext) -> dict[int, str]:
    """Per turn id, its characters as pages and recent text hold them, in order."""
    shown: dict[int, str] = {}
    for page in context.pages:
        for span, turn in zip(page.spans, _turns_of(memory, page.page_id, page.spans), strict=True):
            shown[span.turn_id] = shown.get(span.turn_id, "") + turn.content[span.start : span.end]
    for turn in context.recent:
        assert turn.id is not None
        shown[turn.id] = shown.get(turn.id, "") + turn.content
    return shown


def _turns_of(memory: OpticalMemory, page_id: int, spans: tuple) -> list:
    by_id = {t.id: t for t in memory.page_turns(page_id)}
    return [by_id[span.turn_id] for span in spans]


# --- packing -----------------------------------------------------------------------------------


def test_no_page_forms_until_the_turns_behind_the_window_fill_one(renderer: PillowRenderer) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=2) as memory:
        fill(memory, 3, words=10)  # one short turn behind the window: far from a full page
        context = memory.context()
        assert context.pages == [] and context.text_pages == []
        assert [t.content for t in context.recent] == [sentence(i, 10) for i in range(3)]


def test_every_character_is_shown_exactly_once_across_pages_and_recent_text(
    renderer: PillowRenderer,
) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=3) as memory:
        ids = fill(memory, 40)
        context = memory.context()
        assert len(context.pages) + len(context.text_pages) >= 5
        shown = characters_shown(memory, context)
        stored = {t.id or 0: t.content for t in memory.store.get_turns(memory.thread_id, ids)}
        text_page_turns = {tid for page in context.text_pages for tid in page.turn_ids}
        for turn_id, content in stored.items():
            if turn_id not in text_page_turns:
                assert shown[turn_id] == content


def test_pages_are_consecutive_oldest_first_and_end_before_the_recent_window(
    renderer: PillowRenderer,
) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=4) as memory:
        ids = fill(memory, 30)
        context = memory.context()
        order = [tid for page in context.memory for tid in page.turn_ids]
        assert order == sorted(order)
        assert [page.seq for page in context.memory] == list(range(len(context.memory)))
        window = [t.id or 0 for t in context.recent[-4:]]
        assert window == ids[-4:]
        assert max(order) < window[0]


def test_a_page_is_frozen_once_packed(renderer: PillowRenderer, store_location: str) -> None:
    with OpticalMemory(store_location, renderer=renderer, keep_recent_turns=2) as memory:
        fill(memory, 20)
        before = memory.store.pages(memory.thread_id)
        texts = [memory.recall(record.id) for record in before]
        fill(memory, 30)
        after = memory.store.pages(memory.thread_id)
        assert after[: len(before)] == before
        assert [memory.recall(record.id) for record in before] == texts
        assert len(after) > len(before)


def test_a_long_turn_is_split_over_full_pages_and_recall_gives_its_exact_pieces(
    renderer: PillowRenderer,
    store_location: str,
) -> None:
    long_text = " ".join(f"token{k}" for k in range(900))  # about eight pages at this size
    with OpticalMemory(store_location, renderer=renderer, keep_recent_turns=1) as memory:
        turn = memory.add("user", long_text)
        memory.add("assistant", "ok")
        records = memory.store.pages(memory.thread_id)
        assert len(records) >= 5
        assert all(r.turn_ids == [turn.id] for r in records)
        pieces = [long_text[r.spans[0].start : r.spans[0].end] for r in records]
        assert [memory.recall(r.id) for r in records] == [
            f"#{turn.number} user: {p}" for p in pieces
        ]
        tail = memory.context().recent[0]
        assert tail.id == turn.id
        assert "".join(pieces) + tail.content == long_text


def test_page_capacity_follows_the_renderer_font_size() -> None:
    def pages_for(font_size: int) -> int:
        with OpticalMemory(renderer=PillowRenderer(font_size=font_size), keep_recent_turns=1) as m:
            for index in range(60):
                m.add("user", sentence(index))
            return len(m.store.pages(m.thread_id))

    large, small = pages_for(40), pages_for(20)
    assert small >= 1
    assert large >= 3 * small  # half the type size holds about four times the text


# --- the context -------------------------------------------------------------------------------


def test_context_pages_carry_images_at_their_mode_and_honest_token_counts(
    renderer: PillowRenderer,
) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=2) as memory:
        fill(memory, 60)
        context = memory.context()
        assert context.pages, "expected image pages"
        for page in context.pages:
            assert page.image.size == page_size(page.mode)
            assert Image.open(io.BytesIO(page.png())).size == page_size(page.mode)
            assert page.vision_tokens == page.mode.sequence_tokens(*page_size(page.mode))
            assert page.text_tokens == count_text_tokens(memory.recall(page.page_id))
            assert page.vision_tokens <= page.text_tokens  # the profitability gate
        expected_text = sum(count_text_tokens(turn_text(t.role, t.content)) for t in context.recent)
        expected_text += sum(page.text_tokens for page in context.text_pages)
        # Ids such as "w3x7" on pages the target is not known to read exactly go as text too.
        expected_text += sum(count_text_tokens(page.verbatim) for page in context.pages)
        assert all("w" in page.verbatim for page in context.pages)
        assert context.text_tokens == expected_text
        assert context.vision_tokens == sum(page.vision_tokens for page in context.pages)
        assert context.total_tokens == context.text_tokens + context.vision_tokens
        assert context.replaced_text_tokens == sum(page.text_tokens for page in context.pages)
        assert context.forgotten_turn_ids == []


def test_modes_follow_the_schedule_by_age(renderer: PillowRenderer) -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 2), (Mode.SMALL, 2), (Mode.TINY, 1)], batch=1)
    with OpticalMemory(renderer=renderer, schedule=schedule, keep_recent_turns=2) as memory:
        fill(memory, 50)
        context = memory.context()
        modes = [page.mode for page in context.memory]
        assert len(modes) >= 6
        assert modes[-2:] == [Mode.BASE, Mode.BASE]
        assert modes[-4:-2] == [Mode.SMALL, Mode.SMALL]
        assert set(modes[:-4]) == {Mode.TINY}


def test_pages_already_sent_change_mode_only_once_a_batch(renderer: PillowRenderer) -> None:
    schedule = DecaySchedule(tiers=[(Mode.SMALL, 3), (Mode.TINY, 1)], batch=4)
    with OpticalMemory(renderer=renderer, schedule=schedule, keep_recent_turns=2) as memory:
        before: dict[int, Mode] = {}
        changed_at: list[int] = []
        while len(before) < 26:
            fill(memory, 1)
            shown = {page.page_id: page.mode for page in memory.context().memory}
            if any(shown[page_id] is not mode for page_id, mode in before.items()):
                changed_at.append(len(shown))
            before = shown
        # Each change moved a whole batch of pages, on the call that froze page 4, 8, 12, ...
        assert changed_at == list(range(4, len(before) + 1, 4))


def test_under_a_budget_pages_fade_where_legibility_costs_least(
    renderer: PillowRenderer,
) -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 8), (Mode.SMALL, 8), (Mode.TINY, 1)], batch=1)
    with OpticalMemory(renderer=renderer, schedule=schedule, keep_recent_turns=2) as memory:
        fill(memory, 14)
        full = memory.context()
        pages = len(full.memory)
        assert pages >= 3 and [p.mode for p in full.pages] == [Mode.BASE] * pages
        text = full.text_tokens
        # Enough for every page at SMALL, not for one BASE with the rest TINY: all go SMALL,
        # where demoting the oldest first would have left two TINY pages and one SMALL.
        fitted = memory.context(budget_tokens=text + pages * 111)
        assert [p.mode for p in fitted.memory] == [Mode.SMALL] * pages
        assert fitted.total_tokens <= text + pages * 111


def test_a_page_whose_image_costs_more_than_its_text_is_given_as_text() -> None:
    huge_type = PillowRenderer(font_size=200)  # 4 lines of a few words: images cost more
    with OpticalMemory(renderer=huge_type, keep_recent_turns=1) as memory:
        fill(memory, 6, words=12)
        context = memory.context()
        assert context.pages == []
        assert len(context.text_pages) >= 3
        for page in context.text_pages:
            assert page.text == memory.recall(page.page_id)
            assert page.text_tokens == count_text_tokens(page.text)
            assert page.vision_tokens > page.text_tokens
        assert context.vision_tokens == 0
        assert memory.renders == 0  # text pages are never drawn


def test_budget_is_respected_by_demoting_then_forgetting(renderer: PillowRenderer) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=2) as memory:
        fill(memory, 80)
        full = memory.context()
        budget = full.total_tokens // 3
        fitted = memory.context(budget_tokens=budget)
        assert fitted.total_tokens <= budget
        assert not fitted.over_budget
        assert [t.id for t in fitted.recent][-2:] == [t.id for t in full.recent][-2:]
        # Older pages are never sharper than newer ones.
        ranks = [Mode.parse(p.mode).size for p in fitted.pages if p.mode is not Mode.GUNDAM]
        assert ranks == sorted(ranks)
        shown = {tid for page in fitted.memory for tid in page.turn_ids}
        shown |= {t.id for t in fitted.recent if t.id is not None}
        assert fitted.forgotten_turn_ids
        assert not set(fitted.forgotten_turn_ids) & shown


def test_a_tiny_budget_keeps_only_the_newest_turn(renderer: PillowRenderer) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=4) as memory:
        ids = fill(memory, 30)
        context = memory.context(budget_tokens=1)
        assert [t.id for t in context.recent] == [ids[-1]]
        assert context.pages == [] and context.text_pages == []
        assert context.over_budget  # the newest turn alone is over 1 token
        assert set(context.forgotten_turn_ids) == set(ids[:-1])


def test_context_rejects_a_bad_budget(renderer: PillowRenderer) -> None:
    with OpticalMemory(renderer=renderer) as memory:
        with pytest.raises(ValueError, match="budget_tokens"):
            memory.context(budget_tokens=-5)
        with pytest.raises(TypeError, match="budget_tokens"):
            memory.context(budget_tokens="1000")  # type: ignore[arg-type]


def test_forget_after_hides_old_pages_but_search_still_finds_their_turns(
    renderer: PillowRenderer,
    store_location: str,
) -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 1), (Mode.TINY, 1)], forget_after=2, batch=1)
    with OpticalMemory(
        store_location, renderer=renderer, schedule=schedule, keep_recent_turns=2
    ) as memory:
        memory.add("user", "My locker code is 48213, please remember it.")
        fill(memory, 40)
        context = memory.context()
        assert len(context.memory) == 2
        first_id = memory.store.newest_turns(memory.thread_id, 10_000)[0].id
        assert first_id in context.forgotten_turn_ids
        found = memory.search("LOCKER code")
        assert [hit.turn.id for hit in found][:1] == [first_id]
        assert found[0].turn.content == "My locker code is 48213, please remember it."
        assert found[0].number == 1 and found[0].mode is None  # its page is forgotten
        assert found[0].page_id == memory.store.pages(memory.thread_id)[0].id


# --- caching -----------------------------------------------------------------------------------


def test_each_page_renders_once_per_mode_and_cache_hits_do_not_render(
    renderer: PillowRenderer, store_location: str
) -> None:
    path = store_location
    schedule = DecaySchedule(tiers=[(Mode.BASE, 2), (Mode.SMALL, 2), (Mode.TINY, 1)], batch=1)
    seen: set[tuple[int, Mode]] = set()
    with OpticalMemory(path, renderer=renderer, schedule=schedule, keep_recent_turns=2) as memory:
        for _ in range(6):
            fill(memory, 12)
            context = memory.context()
            seen |= {(page.page_id, page.mode) for page in context.pages}
            assert memory.renders == len(seen)
        renders = memory.renders
        memory.context()
        assert memory.renders == renders
    with OpticalMemory(path, renderer=renderer, schedule=schedule, keep_recent_turns=2) as again:
        context = again.context()
        assert again.renders == 0
        assert again.cache_hits == len(context.pages)
        assert context.pages[0].image.size == page_size(context.pages[0].mode)
        stored = context.pages[0].png()  # from the store's render cache
        assert (stored[25], stored[24]) == (3, 4), "a palette PNG at 4 bits a pixel"


def test_page_image_draws_any_page_at_any_mode_once(
    renderer: PillowRenderer, store_location: str
) -> None:
    with OpticalMemory(store_location, renderer=renderer, keep_recent_turns=1) as memory:
        fill(memory, 20)
        page_id = memory.store.pages(memory.thread_id)[0].id
        page = memory.page_image(page_id, "gundam")
        assert page.mode is Mode.GUNDAM and page.image.size == page_size(Mode.GUNDAM)
        renders = memory.renders
        assert memory.page_image(page_id, Mode.GUNDAM).png() == page.png()
        assert memory.renders == renders


# --- recall, search, stats, threads -------------------------------------------------------------


def test_recall_unknown_or_foreign_page_names_the_fix(
    renderer: PillowRenderer, store_location: str
) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        with pytest.raises(KeyError, match=r"context\(\)\.pages"):
            memory.recall(12345)
        with pytest.raises(TypeError, match="page_id"):
            memory.recall("1")  # type: ignore[arg-type]


def test_search_ranks_phrase_matches_first(renderer: PillowRenderer, store_location: str) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        memory.add("user", "The blue house is near the river.")
        memory.add("user", "A house, painted blue, sold last year.")
        memory.add("user", "Nothing relevant here.")
        memory.add("user", "The Blue House again, the blue house.")
        hits = memory.search('"blue house"')
        assert {hit.number for hit in hits[:2]} == {1, 4}
        assert hits[0].snippet == "The **Blue House** again, the **blue house**."
        assert len(memory.search("blue house", limit=1)) == 1
        assert memory.search("absent words") == []
        with pytest.raises(ValueError, match="non-empty"):
            memory.search("  ")


def test_search_answers_questions_not_just_word_lists(
    renderer: PillowRenderer, store_location: str
) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        memory.add("Caroline", "I went to a LGBTQ support group yesterday and it was powerful.")
        memory.add("Melanie", "That's great! What did you take away from it?")
        memory.add("Caroline", "Mostly courage. Also, I'm researching adoption agencies.")
        memory.add("Melanie", "I painted a sunrise over the lake last weekend.")
        # Stop words ("what", "did") and word forms ("research" ~ "researching") are handled,
        # the speaker named in the question counts.
        assert memory.search("What did Caroline research?")[0].number == 3
        assert memory.search("When did Melanie paint a sunrise?")[0].number == 4


def test_search_codes_and_the_users_words_before_the_models_echo(
    renderer: PillowRenderer, store_location: str
) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        memory.add("user", "My locker code is pine-653, keep it safe.")
        memory.add("assistant", "Noted.")
        memory.add("user", "Pine trees grow on 653 hills.")  # both words, not the code
        memory.add("assistant", '\n[tool call] recall_memory({"query": "pine-653"})')
        memory.add("tool", "[turn 1] user: My locker code is pine-653, keep it safe.")
        hits = memory.search("pine-653")
        assert hits[0].number == 1
        assert [hit.number for hit in hits].index(3) > 0


def test_search_prefers_turns_of_the_date_a_question_names(
    renderer: PillowRenderer, store_location: str
) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        memory.add("user", "We went camping by the lake.", timestamp=datetime(2023, 6, 2, 10))
        memory.add("user", "Camping again, in the hills.", timestamp=datetime(2023, 8, 20, 10))
        assert memory.search("Where did we go camping in August 2023?")[0].number == 2
        assert memory.search("camping on 2 June, 2023")[0].number == 1


def test_a_question_asking_when_prefers_the_turn_that_says_when(
    renderer: PillowRenderer, store_location: str
) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        memory.add("Melanie", "Painting sunrises is my thing: I paint a sunrise, then a sunrise.")
        for n in range(4):
            memory.add("Caroline", f"Unrelated small talk, part {n}.")
        memory.add("Melanie", "I painted a sunrise last weekend.")
        # The first turn holds the words more often; the second says when.
        assert memory.search("What does Melanie paint? A sunrise?")[0].number == 1
        for question in (
            "When did Melanie paint a sunrise?",
            "In what year did Melanie paint a sunrise?",
        ):
            assert memory.search(question)[0].number == 6


def test_turn_numbers_count_each_thread_from_one(store_location: str) -> None:
    path = store_location
    with OpticalMemory(path, thread_id="a") as a, OpticalMemory(path, thread_id="b") as b:
        assert [a.add("user", f"a{i}").number for i in range(3)] == [1, 2, 3]
        assert b.add("user", "b0").number == 1
        assert [t.content for t in a.turns(2, 3)] == ["a1", "a2"]
        assert [t.content for t in b.turns(1)] == ["b0"]
        assert a.turns(9) == []
        with pytest.raises(ValueError, match="first"):
            a.turns(0)
        with pytest.raises(ValueError, match="before"):
            a.turns(3, 2)


def test_rehearsal_sharpens_a_recalled_page_for_a_while(
    renderer: PillowRenderer, store_location: str
) -> None:
    tiers = [(Mode.BASE, 1), (Mode.SMALL, 1), (Mode.TINY, 1)]
    for rehearsal in (None, 2):
        schedule = DecaySchedule(tiers=tiers, rehearsal=rehearsal, batch=1)
        with OpticalMemory(
            store_location,
            thread_id=f"rehearsal-{rehearsal}",
            renderer=renderer,
            schedule=schedule,
            keep_recent_turns=1,
        ) as memory:
            memory.add("user", "The ferry leaves from pier 9.")
            while len(memory.store.pages(memory.thread_id)) < 4:
                fill(memory, 5)
            first = memory.store.pages(memory.thread_id)[0].id
            mode_of = {page.page_id: page.mode for page in memory.context().memory}
            assert mode_of[first] is Mode.TINY
            memory.turns(1)  # the agent reads turn 1 back exactly
            mode_of = {page.page_id: page.mode for page in memory.context().memory}
            assert mode_of[first] is (Mode.SMALL if rehearsal else Mode.TINY)
            while len(memory.store.pages(memory.thread_id)) < 6:
                fill(memory, 5)
            mode_of = {page.page_id: page.mode for page in memory.context().memory}
            assert mode_of[first] is Mode.TINY  # two pages later the rehearsal has worn off


def test_rehearsal_never_breaks_the_budget(renderer: PillowRenderer, store_location: str) -> None:
    schedule = DecaySchedule(tiers=[(Mode.BASE, 1), (Mode.TINY, 1)], rehearsal=10)
    with OpticalMemory(
        store_location, renderer=renderer, schedule=schedule, keep_recent_turns=1
    ) as memory:
        while len(memory.store.pages(memory.thread_id)) < 4:
            fill(memory, 5)
        first = memory.store.pages(memory.thread_id)[0].id
        memory.recall(first)
        tight = memory.context(budget_tokens=memory.context().total_tokens - 1)
        assert tight.total_tokens <= tight.budget_tokens  # type: ignore[operator]


def test_stats_count_turns_pages_and_savings(renderer: PillowRenderer) -> None:
    with OpticalMemory(renderer=renderer, keep_recent_turns=2) as memory:
        fill(memory, 50)
        stats = memory.stats()
        context = memory.context()
        assert stats.turns == 50
        assert stats.pages == len(context.memory)
        assert sum(stats.pages_per_mode.values()) == stats.pages
        for mode in Mode:
            assert stats.pages_per_mode[mode.value] == sum(p.mode is mode for p in context.pages)
        assert stats.history_text_tokens == sum(
            count_text_tokens(turn_text(t.role, t.content))
            for t in memory.store.iter_turns(memory.thread_id)
        )
        assert stats.vision_tokens == context.vision_tokens
        assert stats.tokens_saved == context.replaced_text_tokens - context.vision_tokens > 0
        assert stats.as_dict()["turns"] == 50


def test_threads_in_one_store_are_isolated(renderer: PillowRenderer, store_location: str) -> None:
    path = store_location
    with (
        OpticalMemory(path, thread_id="alice", renderer=renderer, keep_recent_turns=1) as alice,
        OpticalMemory(path, thread_id="bob", renderer=renderer, keep_recent_turns=1) as bob,
    ):
        alice.add("user", "alice secret: the vault code is 1111 " * 60)
        bob.add("user", "bob secret: the vault code is 2222 " * 60)
        alice.add("user", "next")
        bob.add("user", "next")
        alice_pages = alice.context().memory
        assert alice_pages
        assert "2222" not in " ".join(alice.recall(p.page_id) for p in alice_pages)
        assert all("1111" in t.content or t.content == "next" for t in alice.context().recent)
        found = [h.turn.content for h in bob.search("vault")]
        assert found[0].startswith("bob secret: ") and not any("1111" in t for t in found)
        bob_page = bob.context().memory[0].page_id
        with pytest.raises(KeyError):
            alice.recall(bob_page)
        assert alice.threads() == ["alice", "bob"]


def test_add_returns_the_stored_turn_with_its_timestamp(
    renderer: PillowRenderer, store_location: str
) -> None:
    stamp = datetime(2026, 3, 1, 12, 30, tzinfo=timezone.utc)
    with OpticalMemory(store_location, renderer=renderer) as memory:
        turn = memory.add("user", "hello", timestamp=stamp)
        assert turn.id is not None and turn.timestamp == stamp
        assert memory.context().recent == [turn]


# --- input checks ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "content", "error", "message"),
    [
        ("user", b"bytes", TypeError, "decode"),
        ("user", 42, TypeError, "content must be a str"),
        ("", "hi", ValueError, "role must not be empty"),
        (None, "hi", TypeError, "role must be a str"),
        ("user", "lone \ud800 surrogate", ValueError, "surrogate"),
    ],
)
def test_bad_turns_are_refused_and_store_nothing(
    renderer: PillowRenderer,
    store_location: str,
    role: object,
    content: object,
    error: type,
    message: str,
) -> None:
    with OpticalMemory(store_location, renderer=renderer) as memory:
        memory.add("user", "kept")
        with pytest.raises(error, match=message):
            memory.add(role, content)  # type: ignore[arg-type]
        assert [t.content for t in memory.context().recent] == ["kept"]


def test_bad_constructor_arguments_say_what_is_valid(renderer: PillowRenderer) -> None:
    with pytest.raises(ValueError, match="choose one of"):
        OpticalMemory(target="gpt-9")
    with pytest.raises(ValueError, match="keep_recent_turns"):
        OpticalMemory(keep_recent_turns=-1)
    with pytest.raises(ValueError, match="'pil', 'html'"):
        OpticalMemory(renderer="svg")
    with pytest.raises(TypeError, match="Renderer"):
        OpticalMemory(renderer=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="thread_id"):
        OpticalMemory(thread_id="")


def test_a_closed_memory_says_to_open_a_new_one(
    renderer: PillowRenderer, store_location: str
) -> None:
    memory = OpticalMemory(store_location, renderer=renderer)
    memory.close()
    with pytest.raises(StoreError, match="closed"):
        memory.add("user", "late")


def test_add_messages_takes_dicts_and_checks_all_before_storing_any(
    renderer: PillowRenderer,
) -> None:
    with OpticalMemory(renderer=renderer) as memory:
        turns = memory.add_messages(
            [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            ]
        )
        assert [(t.role, t.content) for t in turns] == [("user", "hi"), ("assistant", "hello")]
        with pytest.raises(ValueError, match="message 1 needs 'role' and 'content'"):
            memory.add_messages([{"role": "user", "content": "lost"}, {"content": "no role"}])
        with pytest.raises(TypeError, match="list of messages"):
            memory.add_messages({"role": "user", "content": "one"})
        assert [t.content for t in memory.context().recent] == ["hi", "hello"]


def test_add_messages_takes_langchain_messages_with_tool_calls(renderer: PillowRenderer) -> None:
    messages = pytest.importorskip("langchain_core.messages")
    with OpticalMemory(renderer=renderer) as memory:
        turns = memory.add_messages(
            [
                messages.HumanMessage("weather in Oslo?"),
                messages.AIMessage(
                    "", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}]
                ),
                messages.ToolMessage("4 °C, rain", tool_call_id="c1"),
                messages.AIMessage("It is 4 °C and raining in Oslo."),
            ]
        )
        assert [t.role for t in turns] == ["user", "assistant", "tool", "assistant"]
        assert turns[1].content == '[tool call] weather({"city": "Oslo"})'
        assert turns[2].content == "4 °C, rain"
