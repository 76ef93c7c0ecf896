"""The retrieval benchmark: recall of evidence turns when ``memory.search`` is asked a question."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from optical_memory.experiments.locomo import LocomoConversation, LocomoQuestion
from optical_memory.experiments.retrieval import run_retrieval
from optical_memory.experiments.synthetic import SyntheticDialogue, generate_dialogue
from optical_memory.store import open_store
from optical_memory.turns import Turn


def conversation() -> LocomoConversation:
    said = [
        ("Caroline", "I went to a support group yesterday, it was powerful."),
        ("Melanie", "I painted a sunrise over the lake."),
        ("Caroline", "My cat Luna knocked the plant over again."),
        ("Melanie", "Ha! Pets keep us busy."),
    ]
    turns = tuple(
        Turn(role=role, content=content, timestamp=datetime(2023, 5, 8, 13))
        for role, content in said
    )

    def ask(question: str, evidence: tuple[str, ...], category: int) -> LocomoQuestion:
        return LocomoQuestion(question, "-", evidence, category)

    return LocomoConversation(
        sample_id="conv-test",
        speakers=("Caroline", "Melanie"),
        turns=turns,
        dia_ids=("D1:1", "D1:2", "D1:3", "D1:4"),
        questions=(
            ask("When did Caroline go to the support group?", ("D1:1",), 2),
            ask("What is the name of Caroline's cat?", ("D1:3",), 4),
            ask("What did Melanie paint?", ("D9:9",), 4),  # no such turn: not asked
            ask("What did Caroline say about dragons?", ("D1:4",), 5),  # adversarial: not asked
        ),
    )


def test_retrieval_counts_evidence_found_in_the_store_given(store_location: str) -> None:
    result = run_retrieval([conversation()], store_location)
    assert (result.conversations, result.turns) == (1, 4)
    every = result.search["all"]
    assert every.questions == 2 and "5" not in result.search
    assert every.found == {1: 2, 5: 2, 10: 2}
    assert (result.search["2"].questions, result.search["4"].questions) == (1, 1)
    assert len(result.latency_ms) == 2
    with open_store(store_location) as store:  # the conversation went into that store
        assert [turn.content for turn in store.iter_turns("conv-test")][2].startswith("My cat")


def test_as_an_agent_stores_them_the_speakers_are_user_and_assistant(tmp_path: Path) -> None:
    location = str(tmp_path / "agent.db")
    result = run_retrieval([conversation()], location, setting="agent")
    assert result.search["all"].questions == 2
    with open_store(location) as store:
        turns = list(store.iter_turns("conv-test:agent"))
    assert [turn.role for turn in turns] == ["user", "assistant", "user", "assistant"]
    assert turns[0].timestamp == datetime(2023, 5, 8, 13)


def test_the_tuner_scores_a_ranking_as_the_search_ranks_it() -> None:
    # The tuner ranks from the store's term hits in array form; over a conversation the
    # project generates, its recall under the ranking in use is the search's own.
    from optical_memory.experiments.tuning import ask_all, recall_counts
    from optical_memory.store.ranking import RANKING

    generated = _generated_conversation(generate_dialogue())
    asked = ask_all([generated])
    tuned = recall_counts(asked, RANKING)
    for setting in ("names", "agent"):
        searched = run_retrieval([generated], setting=setting).search
        assert tuned[setting]["all"].questions == searched["all"].questions > 10
        assert tuned[setting]["all"].found == searched["all"].found


def _generated_conversation(dialogue: SyntheticDialogue) -> LocomoConversation:
    """The project's synthetic dialogue as a LoCoMo conversation between Ann and Bob, one
    session a day of 20 turns, each planted fact's question asking for its turn."""
    names = {"user": "Ann", "assistant": "Bob"}
    turns = tuple(
        Turn(role=names[role], content=content, timestamp=datetime(2023, 1, 1 + n // 20, 9))
        for n, (role, content) in enumerate(dialogue.turns)
    )
    questions = tuple(
        LocomoQuestion(fact.question, fact.value, (f"D1:{fact.turn + 1}",), 4)
        for fact in dialogue.facts
    )
    dia_ids = tuple(f"D1:{n + 1}" for n in range(len(turns)))
    return LocomoConversation("generated", ("Ann", "Bob"), turns, dia_ids, questions)


def test_the_report_gives_both_settings_and_the_leave_one_out(tmp_path: Path) -> None:
    from optical_memory.experiments.retrieval import retrieval_section
    from optical_memory.experiments.tuning import leave_one_out

    conversations = [_generated_conversation(generate_dialogue(120, seed=s)) for s in (0, 1)]
    conversations[1] = dataclasses.replace(conversations[1], sample_id="generated-1")
    result = {
        "settings": {
            s: run_retrieval(conversations, setting=s).as_dict() for s in ("names", "agent")
        },
        "leave_one_out": leave_one_out(conversations).as_dict(),
    }
    text = "\n".join(retrieval_section(result))
    assert "### Stored with the speakers' names as roles" in text
    assert "### Stored as an agent stores turns" in text
    folds = [line for line in text.splitlines() if line.startswith("| generated")]
    assert [line.split(" | ")[0] for line in folds] == ["| generated", "| generated-1"]
    assert "| range | " in text and "| in use | " in text
