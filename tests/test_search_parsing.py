"""Reading a search query: what it matches, and how much of a runaway query is read."""

from __future__ import annotations

from optical_memory import OpticalMemory
from optical_memory.memory.search import MAX_QUERY_CHARS, capped_query, parse_query


def test_codes_dates_and_words_are_read_as_a_user_writes_them() -> None:
    parsed = parse_query('Where is pine-653 and "the blue door" from v2.1, 3 June 2023?')
    assert set(parsed.text.phrases) == {("pine", "653"), ("the", "blue", "door"), ("v2", "1")}
    assert "where" not in parsed.text.words and "pine" in parsed.text.words
    # A named day and the two after it: people tell of a day afterwards ("last night").
    assert [(start.isoformat(), end.isoformat()) for start, end in parsed.dates] == [
        ("2023-06-03T00:00:00", "2023-06-06T00:00:00")
    ]


def test_a_month_without_a_year_is_that_month_of_any_year_not_a_word() -> None:
    parsed = parse_query("Which lake did Joanna visit in May?")
    assert parsed.months == {5} and parsed.dates == ()
    assert "may" not in parsed.text.words
    assert parse_query("during sept., early-June").months == {9, 6}
    assert parse_query("May I ask about the lake?").months == set()  # a verb, not a month
    assert parse_query("lake in May 2023").months == set()  # a year: a date range instead


def test_a_megabyte_query_is_read_up_to_the_cap_whatever_it_holds() -> None:
    # An unbroken word, codes, quotes and dates a million characters long: the parser reads
    # the first MAX_QUERY_CHARS characters, so the answer is that of the capped query.
    for unit in ("x", "pine-", '"', "1 ", "May 2023 ", "a_b9."):
        huge = unit * (1_000_000 // len(unit))
        assert parse_query(huge) == parse_query(huge[:MAX_QUERY_CHARS])


def test_a_long_word_is_scanned_once_not_once_per_character() -> None:
    # Below the cap a word of 1,000 characters is still a word (no code, no phrase); the
    # code pattern anchors at a word's start, so its scan does not restart inside the word.
    word = "x" * (MAX_QUERY_CHARS - 1)
    parsed = parse_query(word + "7")
    assert parsed.text.phrases == ((word + "7",),)
    assert parse_query(word).text.words == (word,)


def test_a_search_for_a_megabyte_query_finds_what_its_start_asks_for() -> None:
    memory = OpticalMemory(None)
    memory.add("user", "The ferry to Skye leaves at nine.")
    memory.add("assistant", "Noted.")
    query = "ferry Skye " + "z" * 1_000_000
    assert memory.search(query)[0].number == 1


def test_capped_query_says_how_long_the_query_was_and_what_was_read() -> None:
    assert capped_query("ferry") == ("ferry", "")
    text, note = capped_query("q" * 1_000_000)
    assert text == "q" * MAX_QUERY_CHARS
    assert "1,000,000 characters" in note and f"first {MAX_QUERY_CHARS:,}" in note
