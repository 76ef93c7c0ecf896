"""A speaker named in a question finds that speaker's turns, also when the thread's roles are
``user`` and ``assistant`` and the name is only what the other speaker calls them."""

from __future__ import annotations

from optical_memory.memory import OpticalMemory
from optical_memory.memory.search import addressed, named_roles, parse_query
from optical_memory.turns import Turn


def _filler(count: int) -> list[tuple[str, str]]:
    """Turns about nothing the tests ask, alternating speakers (they keep the turns the tests
    look at further apart than a turn's neighbours reach)."""
    return [
        ("user" if n % 2 == 0 else "assistant", f"Small talk about the weather, part {n}.")
        for n in range(count)
    ]


def _thread(greeting: str) -> list[tuple[str, str]]:
    """An agent's thread: the assistant painted first, the user later, in turns of the same
    length; ``greeting`` is how the assistant greets the user, twice, far from both."""
    return [
        ("assistant", "I painted the fence green, once."),  # turn 1
        *_filler(9),
        ("user", "I painted the fence blue, today."),  # turn 11
        *_filler(9),
        ("assistant", greeting),
        *_filler(9),
        ("assistant", greeting.replace("!", ", good to see you.")),
    ]


def _first_hit(location: str, turns: list[tuple[str, str]], question: str) -> Turn:
    with OpticalMemory(location, thread_id="agent") as memory:
        memory.store.add_turns("agent", [(role, text, None, 0) for role, text in turns])
        return memory.search(question, limit=3)[0].turn


def test_a_name_the_assistant_calls_the_user_finds_the_users_turn(store_location: str) -> None:
    turns = _thread("Hey Caroline!")
    first = _first_hit(store_location, turns, "What did Caroline paint?")
    assert (first.number, first.role) == (11, "user")
    assert first.content == "I painted the fence blue, today."


def test_without_that_name_the_older_equal_turn_comes_first(store_location: str) -> None:
    # The same two painting turns score the same on their text alone: the assistant's, older,
    # ranks first when nobody in the thread is called Caroline.
    turns = _thread("Hey there!")
    first = _first_hit(store_location, turns, "What did Caroline paint?")
    assert (first.number, first.role) == (1, "assistant")


def test_addressing_is_a_greeting_or_a_name_set_off_by_a_comma() -> None:
    parsed = parse_query("What did Caroline tell Melanie about the dog?")
    assert parsed.names == {"caroline", "melanie"}  # "dog" is not written as a name

    def said(text: str) -> frozenset[str]:
        return addressed(parsed, Turn(role="assistant", content=text))

    assert said("Hey Caroline! How was the trip?") == {"caroline"}
    assert said("Thanks, Melanie.") == {"melanie"}
    assert said("That sounds great, Caroline!") == {"caroline"}
    assert said("Caroline said the dog barked.") == set()  # spoken about, not to
    assert said("hey caroline") == set()  # not written as a name
    assert said("") == set()


def test_a_name_names_a_role_only_when_one_side_alone_uses_it() -> None:
    caroline = frozenset({"caroline"})
    none: frozenset[str] = frozenset()
    votes = [("assistant", caroline), ("assistant", caroline), ("user", none)]
    assert named_roles(votes) == {"user"}
    # Once is not enough; both sides using it names nobody; a third speaker leaves it unsure.
    assert named_roles([("assistant", caroline), ("user", none)]) == set()
    assert named_roles([*votes, ("user", caroline)]) == set()
    assert named_roles([*votes, ("Sam", none)]) == set()
    assert named_roles([]) == set()


def test_the_tuner_reads_names_as_the_search_does() -> None:
    # As an agent stores it, the question names the user only through what the assistant
    # calls her: the tuner's ranking finds what the search finds, the user's turn first.
    from optical_memory.experiments.locomo import LocomoConversation, LocomoQuestion
    from optical_memory.experiments.retrieval import run_retrieval
    from optical_memory.experiments.tuning import ask_all, recall_counts
    from optical_memory.store.ranking import RANKING

    names = {"user": "Caroline", "assistant": "Sam"}
    said = _thread("Hey Caroline!")
    turns = tuple(Turn(role=names[role], content=text) for role, text in said)
    dia_ids = tuple(f"D1:{n + 1}" for n in range(len(turns)))
    question = LocomoQuestion("What did Caroline paint?", "the fence", ("D1:11",), 4)
    conversation = LocomoConversation("painting", ("Caroline", "Sam"), turns, dia_ids, (question,))
    tuned = recall_counts(ask_all([conversation]), RANKING)
    for setting in ("names", "agent"):
        searched = run_retrieval([conversation], setting=setting).search["all"]
        assert tuned[setting]["all"].found == searched.found == {1: 1, 5: 1, 10: 1}
