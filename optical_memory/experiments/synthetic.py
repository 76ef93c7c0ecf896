"""A deterministic long dialogue with planted facts, for demos and recall experiments.

:func:`generate_dialogue` writes a conversation between a user planning a busy year and an
assistant; every few turns the user states a fact (a person's name, a number, a date, a place)
that later questions can probe. The same ``seed`` and ``turns`` always give the same text and the
same facts, on every machine (only :class:`random.Random` with a fixed seed is used).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PlantedFact", "SyntheticDialogue", "generate_dialogue"]

FACT_KINDS = ("name", "number", "date", "place")

# Names, places, months, the people, numbers, events and trips facts are about, and small-talk
# topics: word lists, kept as data.
_WORDS = json.loads(
    (Path(__file__).resolve().parent / "data" / "synthetic_words.json").read_text(encoding="utf-8")
)
_FIRST, _LAST, _PLACES, _MONTHS = (tuple(_WORDS[k]) for k in ("first", "last", "places", "months"))
_RELATIONS, _NUMBERED = tuple(_WORDS["relations"]), tuple(_WORDS["numbered"])
_EVENTS, _TRIPS, _TOPICS = (tuple(_WORDS[k]) for k in ("events", "trips", "topics"))


_USER_LINES = (
    "Can we talk about {topic} for a minute?",
    "I keep putting off {topic}; any advice?",
    "Quick question about {topic}.",
    "I had another thought about {topic}.",
    "What would you do about {topic}?",
    "Let's get back to {topic} later, but first a small thing.",
)
_ASSISTANT_SENTENCES = (
    "A good first step with {topic} is to write down what you already know and what is unclear.",
    "Many people find that breaking {topic} into three small tasks makes it far less daunting.",
    "If you set aside twenty minutes on a quiet evening, {topic} usually stops feeling urgent.",
    "It may help to ask a friend who has dealt with {topic} what surprised them most.",
    "Keep a short log for a week; patterns around {topic} tend to show up quickly.",
    "Try the cheapest reasonable option first, and only then spend more on {topic}.",
    "There is no single right answer for {topic}, so pick one approach and review it later.",
    "A checklist on the fridge keeps {topic} visible without making it a chore.",
    "Most of the work in {topic} is preparation, so gather what you need before starting.",
    "Be kind to yourself about {topic}; progress is rarely a straight line.",
)
_ACKS = (
    "Noted, I will keep that in mind.",
    "Thanks, I have written that down.",
    "Got it, that is useful to remember.",
    "Understood; I will remember that.",
)


@dataclass(frozen=True)
class PlantedFact:
    """One fact stated in the dialogue.

    ``turn`` is the 0-based index of the turn that states it; ``value`` appears verbatim in that
    turn's content; ``question`` asks for it.
    """

    kind: str
    subject: str
    value: str
    turn: int
    question: str


@dataclass(frozen=True)
class SyntheticDialogue:
    """Turns as ``(role, content)`` pairs, oldest first, and the facts planted in them."""

    turns: list[tuple[str, str]]
    facts: list[PlantedFact]
    seed: int

    def facts_in(self, turn_indices: set[int] | range) -> list[PlantedFact]:
        """The facts stated in any of these turns."""
        return [fact for fact in self.facts if fact.turn in turn_indices]

    def messages(self) -> list[dict[str, str]]:
        """The turns as ``{"role", "content"}`` dicts, ready for ``add_messages``."""
        return [{"role": role, "content": content} for role, content in self.turns]


def generate_dialogue(turns: int = 300, *, seed: int = 0, fact_every: int = 6) -> SyntheticDialogue:
    """A dialogue of ``turns`` turns (user first, alternating) with a fact every ``fact_every``
    turns (on user turns), kinds in rotation: name, number, date, place. Values are unique."""
    if turns < 1:
        raise ValueError(f"turns must be >= 1, not {turns}")
    if fact_every < 2:
        raise ValueError(f"fact_every must be >= 2 (facts sit on user turns), not {fact_every}")
    rng = random.Random(seed)
    used: set[str] = set()
    out: list[tuple[str, str]] = []
    facts: list[PlantedFact] = []
    topic = rng.choice(_TOPICS)
    for index in range(turns):
        if index % 2 == 0:
            if index % 12 == 0:
                topic = rng.choice(_TOPICS)
            line = rng.choice(_USER_LINES).format(topic=topic)
            if index % fact_every == 0:
                fact = _plant(rng, FACT_KINDS[len(facts) % len(FACT_KINDS)], index, used)
                facts.append(fact)
                line = f"{line} {_statement(fact)}"
            out.append(("user", line))
        else:
            stated = out[-1][1]
            sentences = rng.sample(_ASSISTANT_SENTENCES, k=rng.randint(3, 6))
            reply = " ".join(s.format(topic=topic) for s in sentences)
            if facts and facts[-1].turn == index - 1 and facts[-1].value in stated:
                reply = f"{rng.choice(_ACKS)} {reply}"
            out.append(("assistant", reply))
    return SyntheticDialogue(turns=out, facts=facts, seed=seed)


def _unique(used: set[str], make: Callable[[], str]) -> str:
    for _ in range(1000):
        value = make()
        if value not in used:
            used.add(value)
            return str(value)
    raise ValueError(
        "ran out of unique fact values (30 places): use at most 700 turns or a larger fact_every"
    )


def _plant(rng: random.Random, kind: str, turn: int, used: set[str]) -> PlantedFact:
    if kind == "name":
        subject = rng.choice(_RELATIONS)
        value = _unique(used, lambda: f"{rng.choice(_FIRST)} {rng.choice(_LAST)}")
        question = f"What is the name of the user's {subject}?"
    elif kind == "number":
        subject = rng.choice(_NUMBERED)
        value = _unique(used, lambda: str(rng.randint(10_000, 99_999)))
        question = f"What is the user's {subject}?"
    elif kind == "date":
        subject = rng.choice(_EVENTS)
        value = _unique(
            used,
            lambda: f"{rng.randint(1, 28)} {rng.choice(_MONTHS)} {rng.randint(2025, 2031)}",
        )
        question = f"On what date is the user's {subject}?"
    else:
        subject = rng.choice(_TRIPS)
        value = _unique(used, lambda: rng.choice(_PLACES))
        question = f"Where is the user's {subject}?"
    return PlantedFact(kind=kind, subject=subject, value=value, turn=turn, question=question)


def _statement(fact: PlantedFact) -> str:
    if fact.kind == "name":
        return f"By the way, my {fact.subject} is called {fact.value}."
    if fact.kind == "number":
        return f"Also, my {fact.subject} is {fact.value}."
    if fact.kind == "date":
        return f"Remember that my {fact.subject} is on {fact.value}."
    return f"For the record, my {fact.subject} will be in {fact.value}."
