"""Ranked search over a thread's stored turns: what :meth:`OpticalMemory.search` does.

A question is read as a user writes it: stop words ("what", "did", "the") are dropped, the
remaining words may match in any form (the store stems them), quoted phrases and codes
(``pine-653``, ``48213``, ``v2.1``) match as phrases, dates ("3 June, 2023", "October 2023",
"2022", "in May" of any year) pick out the turns stamped then (a day: that day and the
:data:`DAYS_AFTER` after it), and a speaker named in the question (a turn's role, such as
``Caroline`` or ``user``, or a name the other speaker calls them by: :func:`named_roles`) picks
out that speaker's turns. The store ranks turns by text
relevance (each read with its neighbours); this module reranks its best candidates, with the
weights of a :class:`~optical_memory.store.ranking.Ranking` (all of a search's weights live
there):

=========================================  ===========
turn ...                                   score × ...
=========================================  ===========
holds one of the query's phrases           ``phrase``
spoken by a speaker the query names        ``speaker``
stamped within a date the query names      ``date``
says when, for a question asking when      ``when``
a tool's result, or only a tool call       ``tool``
the assistant's                            ``assistant``
=========================================  ===========

A question asking when ("When did Melanie paint a sunrise?", "What year ...", "How long ago
...") is answered by a turn that says when something happened, and people say it as they speak
("yesterday", "last weekend", "two years ago", "in May", "on Friday"); the turn's own date
stamp does not tell which of its day's turns that is.

The tool weight keeps what the model itself called (``recall_memory("pine-653")`` is stored
too) from outranking the user's own words; the assistant's own answers are evidence like any
other turn ("what did you recommend last week?").
"""

from __future__ import annotations

import calendar
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from optical_memory.modes import MODE_WORDS, Mode
from optical_memory.store import TextQuery, TurnMatch
from optical_memory.store.ranking import RANKING, Ranking
from optical_memory.turns import Turn

__all__ = [
    "ParsedQuery",
    "SearchHit",
    "TurnClues",
    "addressed",
    "capped_query",
    "describe_hit",
    "describe_turns",
    "named_roles",
    "parse_query",
    "rerank",
    "turn_clues",
    "turn_head",
]

#: Characters of a query that are read: a question fits many times over, and the parser's and
#: the store's work stay bounded whatever a model or a user passes (callers that cut a query
#: say so: :func:`capped_query`).
MAX_QUERY_CHARS = 1000
#: Marks a tool call written into an assistant turn (see ``OpticalMemory.add_messages``).
TOOL_CALL_MARK = "[tool call]"

# English function words and the words questions are made of; they match nearly every turn.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can cannot could did do does doing don down during each few
    for from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just let me more most my myself no nor not now of off on once only or
    other ought our ours ourselves out over own same she should so some such than that the
    their theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your yours
    yourself yourselves ll re ve d s t m kind type sort thing things mention mentioned share
    shared recently likely might""".split()  # noqa: SIM905 (a word list reads best as words)
)

_MONTHS = {name.lower(): n for n, name in enumerate(calendar.month_name) if name}
_MONTHS.update({name.lower(): n for n, name in enumerate(calendar.month_abbr) if name})
_MONTHS["sept"] = 9
_MONTH = "(" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(\d{4})"
# Most specific first: each date found is cut out of the text before the next pattern runs.
_DATES = (
    (re.compile(rf"\b{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b", re.I), "dmy"),
    (re.compile(rf"\b{_MONTH}\s+{_DAY},?\s+{_YEAR}\b", re.I), "mdy"),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "iso"),
    (re.compile(rf"\b{_MONTH},?\s+{_YEAR}\b", re.I), "my"),
    (re.compile(r"\b(1[89]\d\d|2[01]\d\d)\b"), "y"),
)
#: A month named without a year ("in May", "during July"): any year's.
_MONTH_ALONE = re.compile(rf"\b(?:in|during|early|late|mid|since|until|by)[\s-]+{_MONTH}\b", re.I)
#: Days after a day the query names whose turns count as stamped then: people tell of a day
#: afterwards ("yesterday", "last night").
DAYS_AFTER = 2
_MONTH_NAMES = "|".join(name.lower() for name in calendar.month_name if name)
_DAYS = "|".join(name.lower() for name in calendar.day_name)
_UNITS = "day|days|night|week|weeks|weekend|month|months|year|years|summer|winter|spring|fall"
#: A time said as people say it: in a turn, it may answer a question asking when.
_TIME_SAID = re.compile(
    rf"\b(?:yesterday|today|tonight|tomorrow|ago|{_DAYS}|{_MONTH_NAMES}|(?:19|20)\d\d"
    rf"|(?:last|next|this|past|coming|few|couple of) (?:{_UNITS}))\b"
)  # matched against lower-cased text: several times faster than re.IGNORECASE
#: A question asking when.
_ASKS_WHEN = re.compile(r"^\W*when\b|\bwhat (?:year|month|day|date|time)\b|\bhow long ago\b", re.I)
#: Characters of a turn searched for a time said (a time answering a question comes early).
TIME_SAID_CHARS = 20_000
#: Turns of one role that must address a name before it is read as the other role's.
ADDRESSED_TURNS = 2
#: Words that open a turn's greeting or thanks to its listener.
_GREETINGS = (
    "hey|hi|hello|thanks|thank you|congrats|congratulations|bye|wow|oh|yeah|yes|sure|ok|okay"
)
_VOCATIVES: dict[str, re.Pattern[str]] = {}


def _vocative(name: str) -> re.Pattern[str]:
    """``name`` said to the listener: after a greeting, or set off by a comma before the end of
    a sentence ("..., Caroline!")."""
    pattern = _VOCATIVES.get(name)
    if pattern is None:
        word = re.escape(name)
        pattern = re.compile(rf"\b(?i:{_GREETINGS})\W{{0,3}}{word}\b|,\s*{word}\s*[!.?,]")
        if len(_VOCATIVES) < 1024:
            _VOCATIVES[name] = pattern
    return pattern


_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”')
# A code: word characters joined by punctuation (pine-653, v2.1, a_b) or holding a digit. It
# starts only where a word starts and its runs of word characters never give back what they
# took, so a scan is linear in the text (tried at every character of a long word, it was
# quadratic in the word's length).
_CODE = re.compile(r"(?<!\w)(?:\w++(?:[-./:#@+]\w++)+|\w*?\d\w*+)")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class SearchHit:
    """One turn a search found, best first.

    ``number`` is the turn's number in its thread (the one captions and page labels show);
    ``page_id`` the page that prints its start (None while it waits as text); ``mode`` how
    that page is shown now (None when forgotten, or while the turn is not on a page);
    ``score`` the relevance (higher is better, comparable within one search); ``snippet`` an
    excerpt of the turn with matched words in ``**``; ``own_match``: the turn's own text holds
    a word or phrase of the query (False: it was found as the context of turns beside it that
    do).
    """

    turn: Turn
    number: int
    page_id: int | None
    mode: Mode | None
    score: float
    snippet: str
    own_match: bool = True


@dataclass(frozen=True)
class ParsedQuery:
    """A query split into what the store matches (``text``) and what the rerank uses: the
    query's words (case-folded, for speakers), the date ranges it names (start inclusive,
    end exclusive), whether it asks when, and the content words that may name a speaker
    (case-folded: those written capitalised)."""

    text: TextQuery
    words: frozenset[str]
    dates: tuple[tuple[datetime, datetime], ...]
    asks_when: bool = False
    names: frozenset[str] = frozenset()
    months: frozenset[int] = frozenset()


def capped_query(query: str) -> tuple[str, str]:
    """``query`` cut to :data:`MAX_QUERY_CHARS` characters, and a note saying so (empty when
    nothing was cut): what the recall tool and the chat search for and tell."""
    if len(query) <= MAX_QUERY_CHARS:
        return query, ""
    return query[:MAX_QUERY_CHARS], (
        f"[the query was {len(query):,} characters: searched for its first "
        f"{MAX_QUERY_CHARS:,}; ask with a shorter question or a few words]"
    )


def parse_query(query: str) -> ParsedQuery:
    """Words, phrases, codes and dates of ``query``'s first :data:`MAX_QUERY_CHARS` characters
    (see the module docstring)."""
    query = query[:MAX_QUERY_CHARS]
    dates: list[tuple[datetime, datetime]] = []
    rest = query
    for pattern, kind in _DATES:
        for match in pattern.finditer(rest):
            found = _date_range(match.groups(), kind)
            if found is not None:
                dates.append(found)
        rest = pattern.sub(" ", rest)
    months = frozenset(_MONTHS[m.group(1).lower()] for m in _MONTH_ALONE.finditer(rest))
    rest = _MONTH_ALONE.sub(" ", rest)
    phrases: list[tuple[str, ...]] = []
    for match in _QUOTED.finditer(rest):
        words = tuple(_WORD.findall((match.group(1) or match.group(2)).casefold()))
        if words:
            phrases.append(words)
    rest = _QUOTED.sub(" ", rest)
    for match in _CODE.finditer(rest):
        words = tuple(_WORD.findall(match.group().casefold()))
        if len(words) > 1 or any(c.isdigit() for c in match.group()):
            phrases.append(words)
    all_words = [word.casefold() for word in _WORD.findall(rest)]
    content = [w for w in all_words if w not in STOP_WORDS and len(w) > 1]
    if not content and not phrases:
        content = all_words or [w.casefold() for w in _WORD.findall(query)]
    text = TextQuery(words=tuple(dict.fromkeys(content)), phrases=tuple(dict.fromkeys(phrases)))
    return ParsedQuery(
        text=text,
        words=frozenset(all_words),
        dates=tuple(dates),
        asks_when=_ASKS_WHEN.search(query) is not None,
        names=frozenset(_names(query, content)),
        months=months,
    )


def _names(query: str, content: list[str]) -> list[str]:
    """The content words ``query`` writes capitalised, as names are (all of them in a query
    written without capitals): the words a speaker may be called by."""
    capitalised = {word.casefold() for word in _WORD.findall(query) if word[:1].isupper()}
    if not capitalised:
        return content
    return [word for word in content if word in capitalised]


def _date_range(groups: tuple[str, ...], kind: str) -> tuple[datetime, datetime] | None:
    try:
        if kind == "y":
            year = int(groups[0])
            return datetime(year, 1, 1), datetime(year + 1, 1, 1)
        if kind == "my":
            month, year = _MONTHS[groups[0].lower()], int(groups[1])
            return datetime(year, month, 1), datetime(year + month // 12, month % 12 + 1, 1)
        if kind == "iso":
            day = datetime(int(groups[0]), int(groups[1]), int(groups[2]))
        elif kind == "dmy":
            day = datetime(int(groups[2]), _MONTHS[groups[1].lower()], int(groups[0]))
        else:
            day = datetime(int(groups[2]), _MONTHS[groups[0].lower()], int(groups[1]))
    except (ValueError, KeyError):
        return None  # "31 February": no such day
    return day, day + timedelta(days=1 + DAYS_AFTER)


@dataclass(frozen=True)
class TurnClues:
    """What the rerank sees in one candidate turn for one query: its own text holds a phrase
    of the query, the query names its speaker, it is stamped within a date the query names, it
    says when a question asking when is answered, and who spoke it (``"user"``,
    ``"assistant"`` or ``"tool"``: a tool's result or an assistant turn that only calls tools)."""

    phrase: bool
    speaker: bool
    date: bool
    when: bool
    speaking: str

    def weight(self, ranking: Ranking = RANKING) -> float:
        """The factor the rerank multiplies the turn's text score by."""
        factor = ranking.phrase if self.phrase else 1.0
        factor *= ranking.speaker if self.speaker else 1.0
        factor *= ranking.date if self.date else 1.0
        factor *= ranking.when if self.when else 1.0
        if self.speaking == "tool":
            return factor * ranking.tool
        return factor * ranking.assistant if self.speaking == "assistant" else factor


def addressed(parsed: ParsedQuery, turn: Turn) -> frozenset[str]:
    """The query's words that ``turn`` uses to address someone ("Hey Caroline!", "Thanks,
    Caroline.", "..., Sam?"): capitalised in the turn as a name is, and said to the listener."""
    text = turn.content[:TIME_SAID_CHARS]
    names = [word.capitalize() for word in parsed.names]
    return frozenset(
        name.casefold()
        for name in names
        if name in text and _vocative(name).search(text) is not None  # `in` first: cheap
    )


def named_roles(votes: Iterable[tuple[str, frozenset[str]]]) -> frozenset[str]:
    """The roles a query names by what the other speaker calls them, from ``(role, addressed
    words)`` of the candidate turns: in a thread where two roles speak, a name that one role's
    turns address (at least :data:`ADDRESSED_TURNS` of them, and no turn of the other role)
    names the other role. So as an agent stores turns, "What did Caroline paint?" finds the
    ``user``'s turns when the assistant's say "Hey Caroline!"."""
    speaking: set[str] = set()
    by_word: dict[str, dict[str, int]] = {}
    for role, words in votes:
        speaking.add(role)
        for word in words:
            counts = by_word.setdefault(word, {})
            counts[role] = counts.get(role, 0) + 1
    if len(speaking) != 2:
        return frozenset()
    named = set()
    for counts in by_word.values():
        if len(counts) == 1:
            ((role, turns),) = counts.items()
            if turns >= ADDRESSED_TURNS:
                named |= speaking - {role}
    return frozenset(named)


def turn_clues(
    parsed: ParsedQuery, match: TurnMatch, named: frozenset[str] = frozenset()
) -> TurnClues:
    """The rerank's clues in ``match`` for ``parsed`` (see the module docstring); ``named``:
    the roles the query names by what the other speaker calls them (:func:`named_roles`)."""
    turn = match.turn
    role_words = _role_words(turn.role)
    stamp = turn.timestamp
    dated = False
    if stamp is not None and (parsed.dates or parsed.months):
        naive = stamp.replace(tzinfo=None)
        dated = naive.month in parsed.months or any(
            start <= naive < end for start, end in parsed.dates
        )
    return TurnClues(
        phrase=match.phrase_match,
        speaker=(bool(role_words) and role_words <= parsed.words) or turn.role in named,
        date=dated,
        when=parsed.asks_when
        and _TIME_SAID.search(turn.content[:TIME_SAID_CHARS].lower()) is not None,
        speaking=_speaking(turn),
    )


def rerank(
    parsed: ParsedQuery, matches: list[TurnMatch], ranking: Ranking = RANKING
) -> list[tuple[TurnMatch, float]]:
    """``matches`` with their final scores (see the module docstring), best first; ties keep
    the store's order."""
    named = named_roles(
        (match.turn.role, addressed(parsed, match.turn))
        for match in matches
        if _speaking(match.turn) != "tool"
    )
    scored = [
        (match, match.score * turn_clues(parsed, match, named).weight(ranking)) for match in matches
    ]
    scored.sort(key=lambda pair: -pair[1])
    return scored


@functools.lru_cache(maxsize=256)
def _role_words(role: str) -> frozenset[str]:
    return frozenset(word.casefold() for word in _WORD.findall(role))


def _speaking(turn: Turn) -> str:
    role = turn.role.strip().casefold()
    if role == "tool":
        return "tool"
    if role == "assistant":
        head = turn.content.split(TOOL_CALL_MARK, 1)[0]
        only_calls = TOOL_CALL_MARK in turn.content and not head.strip()
        return "tool" if only_calls else "assistant"
    return "user"


def turn_head(turn: Turn) -> str:
    """``#308 Caroline (3 Nov 2026)``: a stored turn's number, speaker and day."""
    when = f" ({turn.timestamp.day} {turn.timestamp:%b %Y})" if turn.timestamp else ""
    return f"#{turn.number} {turn.role}{when}"


def describe_turns(turns: Sequence[Turn]) -> str:
    """Turns' exact text, one ``#308 Caroline (3 Nov 2026): content`` block each, blank lines
    between: how the recall tool and the chat's ``/recall`` show them."""
    return "\n\n".join(f"{turn_head(turn)}: {turn.content}" for turn in turns)


def describe_hit(hit: SearchHit) -> str:
    """One line per search hit: ``#308 Caroline (3 Nov 2026) · page 12, low resolution: …``."""
    if hit.page_id is None:
        where = "recent, not on a page"
    elif hit.mode is None:
        where = f"page {hit.page_id}, forgotten"
    else:
        where = f"page {hit.page_id}, {MODE_WORDS[hit.mode]}"
    return f"{turn_head(hit.turn)} · {where}: {hit.snippet}"
