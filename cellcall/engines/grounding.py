"""What the other party said, checked by code: verbatim quotes, confirmations, refusals and slots.

A report that says "objective met" when nothing was agreed is the worst failure cellcall can have
(OpenClaw acts on it), so the verdict is never taken from a model or from the agent's own words. Only
the other party's turns count; a quote counts only when it is found in one of them (compared with
case, apostrophes and whitespace normalised) and is widened to its whole sentence, so a quote cannot
cut the "not" off "nothing is booked". A sentence confirms when it matches the confirmation lexicon
(`CONFIRM`) outside a question, a hypothetical ("if", "can", "I'll") or a negation; it declines when
it matches `DECLINE` or negates a confirmation. A turn that talks about reports, objectives or
instructions is never evidence of anything. Slots (day, clock time, part of day) are read from the
words so code can tell whether a booking is the one the objective asked for; a message objective is
confirmed by the caller's "yes, that's right" to a read-back. Pure functions, no state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cellcall.record import Speaker, Turn

_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_SENTENCE = re.compile(r"\S.*?(?:[.!?]+(?=\s|$)|$)", re.S)
_CLAUSE = re.compile(r"\s*(?:[,;:\u2014\u2013]|\s-\s|\bbut\b|\bhowever\b)\s*")

# Text about the report, the objective or the agent's instructions is an injection attempt, never evidence.
META = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,40}\b(?:instructions?|prompts?|rules|previous|above|everything)\b"
    r"|\bobjective|\binstructions?\b|\bsystem prompt\b|\breport\b|\bjson\b|\btranscript\b|\bsummary\b"
    r"|\bmark\b.{0,30}\b(?:met|yes|success|successful|complete|done)\b|\bas an ai\b|\blanguage model\b",
    re.I,
)
_WEEKDAYS = "monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# "see you then / Friday / at 9:30": a time or a day must follow ("I see you at point" is not a booking)
SEE_YOU_WHEN = (
    rf"then\b|tomorrow\b|(?:{_WEEKDAYS})\b|(?:on|at)\s+(?=(?:the\s+)?(?:\d|(?:noon|half|quarter|one|two|three|four|five"
    rf"|six|seven|eight|nine|ten|eleven|twelve|{_WEEKDAYS})\b))"
)
_VERBS = r"booked|book|confirmed|scheduled|rescheduled|reserved|arranged|pencill?ed in|set up|sorted|down for"
CONFIRM = re.compile(
    r"\b(?:is|are|was|were|am|been|'s|'re|'m|got|get|now|all)\s+"
    r"(?:(?:now|all|just|also|been|successfully|officially|definitely|already|properly)\s+)*"
    rf"(?P<passive>{_VERBS}|moved(?=(?:\s+\w+){{0,3}}\s+to\b))\b"
    r"|\b(?:i|we|i've|we've|i have|we have)\s+(?:just\s+|now\s+|already\s+)?"
    r"(?P<active>booked|confirmed|scheduled|rescheduled|reserved|moved|put)\s+(?:you|him|her|them|it|that|\w+)\b"
    r"|\b(?:i've|we've|i have|we have)\s+(?:got\s+)?(?:you|him|her|them|\w+)\s+(?P<down>down|in|booked|pencill?ed in)\b"
    r"|\b(?P<set>(?:you're|you are|we're|we are|that's|that is|it's|it is)\s+(?:all\s+)?set|all set|good to go)\b"
    r"|\b(?:that's|that is|it's|it is|this is)\s+(?:all\s+)?(?P<done>confirmed|booked|done|settled|a deal)\b"
    r"|^\s*(?:yes\s+|yep\s+|okay\s+|ok\s+)?(?P<bare>confirmed|booked|done)\s*[.!]*\s*$"
    rf"|\bsee you (?P<see>{SEE_YOU_WHEN})",
    re.I,
)
CANCELLED = re.compile(r"\b(?:is|are|was|were|been|'s|'re|have|'ve)\s+(?:now\s+|just\s+|been\s+)*(?P<cancel>cancell?ed)\b", re.I)
DECLINE = re.compile(
    r"\bfully booked\b|\bbooked (?:up|solid)\b|\b(?:all|already) (?:booked|taken|gone)\b"
    r"|\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|slot|time|day|morning|afternoon|that one)"
    r"\s+(?:is|'s|are)\s+(?:already\s+|fully\s+|all\s+)?(?:booked|taken|gone)\b"
    r"|\bno (?:free |open )?(?:slots?|appointments?|availability|openings?|space|room|times?|dates?)\b"
    r"|\bnothing (?:free|available|open|left)\b|\b(?:don't|do not) have (?:any|anything)\b"
    r"|\b(?:can't|cannot|can not|couldn't|unable to|won't be able to|not able to)\s+"
    r"(?:book|do|offer|fit|make|move|schedule|reschedule|help|manage|confirm|change)\b"
    r"|\bnot (?:yet )?(?:booked|confirmed|scheduled|reserved|done)\b|\bnot possible\b|\bimpossible\b|\b(?:we're|we are) closed\b|\bi'm afraid not\b|\bnot available\b|\bunavailable\b"
    r"|\b(?:that|it) (?:won't|doesn't|does not|will not) work\b",
    re.I,
)
NEGATION = re.compile(r"\b(?:not|no|never|nothing|nobody|none|neither|nor|cannot|unable|without)\b|n't\b", re.I)
HYPOTHETICAL = re.compile(
    r"\b(?:if|whether|unless|can|could|would|will|shall|should|might|may|must|need|needs|want|wants|try|trying|"
    r"hope|hoping|going to|gonna|about to|to)\b|'ll\b|'d\b",
    re.I,
)
QUESTION_START = re.compile(
    r"^(?:(?:so|and|ok|okay|great|right|well|then)\s+)*(?:is|are|was|were|has|have|had|did|do|does|can|could|would|"
    r"will|shall|should|may|might|am)\b",
    re.I,
)
FRAME = re.compile(
    r"\b(?:if|whether|unless|not true|not the case|not saying|never said|nobody said|no one said|can't say|cannot say|i wish|if only|"
    r"pretend|imagine|suppose|supposing|hypothetically|let's say|as if|would be|sounds like)\b"
    r"|(?:\bnever|\bnot|n't|\bnobody|\bno one)\s+(?:\w+\s+)?(?:told|tell|say|said|saying|sure|know|think|believe|heard)\b",
    re.I,
)
REFUSAL = re.compile(r"^\W*(?:no|nope|sorry)\W+(?:sorry|i'm afraid|no)\b|^\W*i'm afraid not\b", re.I)
COURTESY = re.compile(r"\b(?:no problem|no worries|not a problem|not at all|no trouble|don't worry|do not worry)\b", re.I)
_VERB_WORDS = {"reschedul": "Moved", "moved": "Moved", "cancel": "Cancelled", "reserv": "Reserved", "schedul": "Scheduled"}

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "tomorrow", "today")
_NUMBERS = "one two three four five six seven eight nine ten eleven twelve".split()
_MINUTES = {"o'clock": 0, "oh five": 5, "ten": 10, "fifteen": 15, "twenty": 20, "thirty": 30, "forty five": 45, "forty": 40}
_HOUR = r"(?P<hour>\d{1,2}(?!\d)|" + "|".join(_NUMBERS) + r")"
_WORD_MIN = "|".join(sorted(_MINUTES, key=len, reverse=True))
TIME = re.compile(
    rf"\b{_HOUR}(?:[:.](?P<mm>\d{{2}})|\s+(?P<wmin>{_WORD_MIN}))?\s*(?P<ampm>[ap]\.?m\b\.?)?"
    r"|\b(?P<half>half|quarter) (?P<rel>past|to) (?P<hour2>\d{1,2}|" + "|".join(_NUMBERS) + r")\b"
    r"|\bat (?P<compact>\d{3,4})\b",
    re.I,
)


def norm(text: str) -> str:
    """Case, apostrophes and whitespace normalised: what quote comparison and the lexicons see."""
    return " ".join(text.translate(_APOSTROPHES).lower().split())


def _normalised_with_positions(text: str) -> tuple[str, list[int]]:
    """`norm(text)` and, for each of its characters, the index of the original character it came from."""
    chars: list[str] = []
    positions: list[int] = []
    for index, char in enumerate(text.translate(_APOSTROPHES)):
        if char.isspace():
            if chars and chars[-1] != " ":
                chars.append(" ")
                positions.append(index)
            continue
        for low in char.lower():
            chars.append(low)
            positions.append(index)
    if chars and chars[-1] == " ":
        chars.pop()
        positions.pop()
    return "".join(chars), positions


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`; "9.30" does not end one, "booked. Bye" does."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def other_party_turns(turns: list[Turn]) -> list[Turn]:
    """The turns whose words can be evidence: the far end's, never the agent's or line events."""
    return [turn for turn in turns if turn.speaker is Speaker.CALLER and turn.text.strip()]


@dataclass(frozen=True)
class Located:
    """A quote found in the other party's turn `turn`; `sentence` is the whole sentence(s) it touches."""

    turn: int
    quote: str
    sentence: str


def locate(quote: str, turns: list[Turn]) -> Located | None:
    """The other party's turn holding `quote` (normalised comparison), widened to whole sentences."""
    wanted = norm(quote.strip().strip("\"'\u201c\u201d"))
    if len(wanted) < 2:
        return None
    for turn in other_party_turns(turns):
        flat, positions = _normalised_with_positions(turn.text)
        at = flat.find(wanted)
        if at < 0:
            continue
        start, end = positions[at], positions[at + len(wanted) - 1] + 1
        spans = [(s, e) for s, e in sentences(turn.text) if s < end and e > start]
        sentence = turn.text[spans[0][0] : spans[-1][1]].strip() if spans else turn.text[start:end]
        return Located(turn.index, turn.text[start:end], sentence)
    return None


def is_meta(text: str) -> bool:
    """Talk about the report, objective or instructions: never evidence, whatever else it says."""
    return bool(META.search(norm(text)))


def _clauses(sentence: str) -> list[str]:
    return [part for part in _CLAUSE.split(COURTESY.sub(" ", norm(sentence))) if part.strip()]


def _is_question(sentence: str, clause: str) -> bool:
    return sentence.rstrip().endswith("?") or bool(QUESTION_START.match(clause))


def _confirmation_in(clause: str, objective: str) -> re.Match[str] | None:
    found = CONFIRM.search(clause)
    if found is None and "cancel" in norm(objective):
        found = CANCELLED.search(clause)
    return found


@dataclass(frozen=True)
class Judgement:
    """What one sentence of the other party does: "confirm", "decline" or ""; the deciding words and clause."""

    verdict: str = ""
    words: str = ""
    clause: str = ""


def judge(sentence: str, objective: str = "") -> Judgement:
    """The last clause of the sentence that confirmed or declined decides (see the module docstring)."""
    if is_meta(sentence):
        return Judgement()
    result = Judgement()
    if REFUSAL.match(norm(sentence)):
        result = Judgement("decline", norm(sentence), norm(sentence))
    said_before = ""  # earlier clauses of this sentence: a frame there ("it's not true that") covers the rest
    for clause in _clauses(sentence):
        framed, said_before = bool(FRAME.search(said_before)), f"{said_before} {clause}"
        if _is_question(sentence, clause):
            continue
        refused = DECLINE.search(clause)
        if refused:
            result = Judgement("decline", refused.group(), clause)
            continue
        found = _confirmation_in(clause, objective)
        if found is None:
            continue
        before, after = clause[: found.start()], clause[found.end() :]
        if HYPOTHETICAL.search(before) or framed or FRAME.search(before):
            continue
        negated = NEGATION.search(before) or NEGATION.match(after.strip()) or re.match(r"\W*yet\b", after)
        result = Judgement("decline" if negated else "confirm", found.group(), clause)
    return result


def confirms(sentence: str, objective: str = "") -> bool:
    """True when the sentence, said by the other party, confirms what the call set out to do."""
    return judge(sentence, objective).verdict == "confirm"


def verb_of(words: str) -> str:
    """The outcome's verb for the confirming words: Booked, Moved, Cancelled, Reserved, Scheduled or Confirmed."""
    flat = norm(words)
    if re.search(r"\bbook", flat):
        return "Booked"
    return next((word for stem, word in _VERB_WORDS.items() if stem in flat), "Confirmed")


def turn_sentences(turn: Turn) -> list[str]:
    return [turn.text[s:e].strip() for s, e in sentences(turn.text)]


def _hour(value: str) -> int | None:
    low = value.lower()
    hour = _NUMBERS.index(low) + 1 if low in _NUMBERS else int(low)
    return hour if 1 <= hour <= 23 else None


def times_in(text: str) -> list[str]:
    """Clock times said in `text`, as "9:30" or "3 pm" ("nine thirty", "930" after "at", "half past two")."""
    found: list[str] = []
    for match in TIME.finditer(norm(text).replace("-", " ")):
        groups = match.groupdict()
        if groups["compact"]:
            digits = groups["compact"]
            hour, minute = _hour(digits[:-2]), int(digits[-2:])
        elif groups["half"]:
            base = _hour(groups["hour2"])
            offset = 30 if groups["half"] == "half" else 15
            if base is None:
                continue
            hour, minute = (base, offset) if groups["rel"] == "past" else (base - 1 or 12, 60 - offset)
        else:
            hour = _hour(groups["hour"])
            minute = int(groups["mm"]) if groups["mm"] else _MINUTES.get(groups["wmin"] or "", 0)
            said_as_time = groups["mm"] or groups["wmin"] or groups["ampm"]
            if not said_as_time and not norm(text)[: match.start()].endswith("at "):
                continue
        if hour is None or minute >= 60:
            continue
        suffix = f" {groups['ampm'].replace('.', '').lower()}" if groups.get("ampm") else ""
        label = f"{hour}:{minute:02d}" if minute or not suffix else str(hour)
        found.append(label + suffix)
    return list(dict.fromkeys(found))


def days_in(text: str) -> list[str]:
    """Days named in `text` (Monday..Sunday, today, tomorrow), capitalised, in order, once each."""
    flat = norm(text)
    named = sorted((m.start(), day) for day in DAYS for m in re.finditer(rf"\b{day}\b", flat))
    return list(dict.fromkeys(day.capitalize() for _, day in named))


def slot_in(text: str) -> str:
    """The day and time said ("Friday 9:30" from "booked for Friday at nine thirty"); "" when none.

    Of several clauses the first that names a day and a time wins: "booked for Friday at 9.30 and the
    Tuesday appointment is cancelled" is Friday 9:30, not Tuesday."""
    for clause in re.split(r"\band\b|[,;]", text):
        if days_in(clause) and times_in(clause):
            text = clause
            break
    days, times = days_in(text), times_in(text)
    return " ".join(part for part in (days[-1] if days else "", times[-1] if times else "") if part)


def part_of_day(text: str) -> str:
    """ "morning", "afternoon", "evening" as said or as the clock time implies; "" when it cannot tell."""
    flat = norm(text)
    for part in ("morning", "afternoon", "evening"):
        if re.search(rf"\b{part}\b", flat):
            return part
    times = times_in(text)
    if not times:
        return ""
    hour = int(times[-1].split(":")[0].split(" ")[0])
    if times[-1].endswith("pm"):
        hour = hour + 12 if hour < 12 else hour
    elif not times[-1].endswith("am") and 1 <= hour <= 6:
        hour += 12  # "at two" on an appointment line means the afternoon
    return "morning" if hour < 12 else "afternoon" if hour < 17 else "evening"


def objective_target(objective: str) -> str:
    """The part of the objective that names what is wanted: after "from ... to", else all of it."""
    moved = re.search(r"\bfrom\b.+?\bto\b(.+)", objective, re.I | re.S)
    return moved.group(1) if moved else objective


def slot_mismatch(objective: str, agreed: str) -> str:
    """What the objective asked for ("Friday morning") when the agreed words name another day or part; else ""."""
    target = objective_target(objective)
    want_days = [day for day in days_in(target) if day not in ("Today", "Tomorrow")]
    want_part = next((p for p in ("morning", "afternoon", "evening") if re.search(rf"\b{p}\b", norm(target))), "")
    got_days, got_part = days_in(agreed), part_of_day(agreed)
    wrong_day = bool(want_days and got_days and not set(got_days) & set(want_days))
    wrong_part = bool(want_part and got_part and got_part != want_part)
    return " ".join([*want_days, want_part]).strip() if wrong_day or wrong_part else ""


MESSAGE_OBJECTIVE = re.compile(r"\b(?:take|taking|leave|leaving|record)\b.{0,20}\bmessage\b", re.I)
READ_BACK_OK = re.compile(
    r"^\W*(?:yes|yeah|yep|correct|exactly|perfect|right)\b(?!\W*(?:but|no|not|wait)\b)"
    r"|^\W*(?:that's|that is|it's|yes,? that's)\s+(?:right|correct|it|perfect)\b(?!\W*(?:but|no|not|wait)\b)",
    re.I,
)
READ_BACK_WRONG = re.compile(r"^\W*no\b|\b(?:that's|that is|it's) (?:not right|wrong|incorrect)\b|\bnot quite\b", re.I)


def takes_a_message(objective: str) -> bool:
    """An inbound screening objective: success is the caller confirming the message read back to them."""
    return bool(MESSAGE_OBJECTIVE.search(objective))


def judge_read_back(sentence: str) -> Judgement:
    """The other party's answer to the agent reading their message back: "confirm", "decline" or ""."""
    flat = norm(sentence)
    if is_meta(sentence):
        return Judgement()
    if READ_BACK_WRONG.search(flat):
        return Judgement("decline", flat, flat)
    return Judgement("confirm", "message confirmed", flat) if READ_BACK_OK.match(flat) else Judgement()
