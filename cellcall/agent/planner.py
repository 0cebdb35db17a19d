"""The next move, decided by code from the dialogue state and the other party's latest turn.

Each move carries its own plain wording (`say`), a short instruction for the model (`hint`) when the
model may phrase it, the words it must contain, and the control tags it ends with. Pure functions: the
same state and words give the same move, so the planner is tested in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cellcall.agent.brief import Brief, content_words
from cellcall.agent.dialogue import Snapshot
from cellcall.agent.understand import Heard, hear
from cellcall.agent.when import Slot
from cellcall.tags import Tag

HANGUP = frozenset({Tag.HANGUP})
ENDINGS = {  # why the agent hung up, for the report's hangup_reason
    "close-stop": "asked to stop calling",
    "close-success": "objective met",
    "close-goodbye": "the other party said goodbye",
    "close-later": "asked to call back later",
    "close-unavailable": "nothing suitable was available",
    "close-confused": "the other party did not follow",
    "close-sales": "a sales call, declined",
    "close-message": "message taken",
}


@dataclass(frozen=True)
class Move:
    kind: str
    say: str  # what the agent says when the model is not asked or its words are refused ("" = stay silent)
    hint: str = ""  # the step for the model, in plain words ("" = the model is not asked)
    tags: frozenset[str] = field(default_factory=frozenset)
    must_mention: tuple[str, ...] = ()  # a phrasing by the model must contain one of these (lower case)
    accepted: Slot | None = None

    @property
    def ending(self) -> str | None:
        """Why this move ends the call, or None when it does not."""
        return ENDINGS.get(self.kind)


def plan(brief: Brief, state: Snapshot, text: str) -> Move:
    """The agent's move in answer to `text` (the other party's words, untrusted)."""
    heard = hear(text)
    if brief.direction == "inbound":
        return _inbound(brief, state, heard)
    return _outbound(brief, state, heard)


# ---- outbound: we called them to get something done ----------------------------------------------


def _outbound(brief: Brief, state: Snapshot, heard: Heard) -> Move:
    principal = brief.principal or "them"
    if heard.stop:
        return Move("close-stop", "I'm sorry to have bothered you. Goodbye.", tags=HANGUP)
    if heard.backchannel and state.unsaid:
        return Move("resume", state.unsaid)  # "mm-hm" over our words: they were listening, so go on
    confirmed_slots = heard.slots if heard.confirmed else ()
    if confirmed_slots and not brief.want.is_empty() and not any(brief.want.fits(s) for s in confirmed_slots):
        return _ask_alternative(brief, state, prefix=f"Sorry, that time doesn't work for {principal}.")
    again = state.accepted is not None and any(_same_slot(s, state.accepted) for s in heard.slots)
    if heard.confirmed or again or (state.accepted is not None and heard.agreed and not heard.question and not heard.offers):
        slot = state.accepted
        done = f"Perfect, so that's {slot.text}." if slot is not None else "Perfect."
        return Move("close-success", f"{done} Thank you so much for your help. Goodbye.", tags=HANGUP)
    if heard.goodbye and not heard.question:
        return Move("close-goodbye", "Thank you, goodbye.", tags=HANGUP)
    anything_else = re.search(r"\banything else\b", heard.text, re.I) is not None
    if anything_else and (state.accepted is not None or state.confirmed is not None):
        return Move("close-success", "No, that's everything. Thank you so much, goodbye.", tags=HANGUP)
    if anything_else and (state.unavailable is not None or heard.unavailable):
        return Move("close-unavailable", f"No, thank you. I'll let {principal} know. Goodbye.", tags=HANGUP)
    if heard.later and not heard.offers:
        return Move("close-later", "Of course, I'll call back later. Thank you, goodbye.", tags=HANGUP)
    if heard.unavailable and not heard.offers:
        wanted_gone = any(s.day in brief.want.days for s in heard.slots)  # "nothing on any Friday": no point asking again
        if state.alternatives_asked == 0 and not brief.want.is_empty() and not wanted_gone:
            return _ask_alternative(brief, state)
        return Move(
            "close-unavailable",
            f"I understand. Thank you for checking, I'll let {principal} know. Goodbye.",
            tags=HANGUP,
        )
    if heard.repeat and state.said and not heard.asks:
        return _repeat(state)
    answers = _answers(brief, state, heard)
    fitting = [slot for slot in heard.offers if brief.want.fits(slot)]
    if fitting and all(slot.hour is None for slot in fitting) and not state.closing:
        day = fitting[0]
        when = " ".join(p for p in (day.day.capitalize() if day.day else "", day.period or "") if p) or "That"
        ask = f"{when} would work. What time do you have?"
        return Move("ask-time", f"{answers} {ask}".strip(), hint=f"Say {when} works and ask for a time.")
    fitting = [slot for slot in fitting if slot.hour is not None]
    if fitting and not state.closing:
        slot = fitting[0]
        accept = f"{_capital(slot.text)} works. Please book that for {principal}."
        say = f"{answers} {accept}" if answers else accept
        return Move("accept", say, hint=f"Accept {slot.text} for {principal}.", must_mention=_keys(slot), accepted=slot)
    if heard.offers and not brief.want.is_empty():
        if "when" in heard.asks and state.alternatives_asked == 0:
            prefix = f"{answers} Any {brief.want.spoken()} would work.".strip()
            return Move("ask-alternative", f"{prefix} Do you have anything then?", hint=f"Ask for {brief.want.spoken()}.")
        return _ask_alternative(brief, state, prefix=answers)
    if answers:
        return Move("answer", answers, hint=f"Answer their question: {answers}")
    under_way = state.purpose_stated or state.offers or state.accepted is not None or "ask-alternative" in state.moves
    if "reason" in heard.asks or "when" in heard.asks or not under_way:
        return _purpose(brief, state)
    if heard.hold or (heard.agreed and not heard.question):
        return Move("wait", "")
    if heard.question:
        return Move(
            "free",
            "I'm sorry, I don't know that.",
            hint=f"Answer briefly as {brief.name}, without inventing anything, then return to the reason for the call.",
        )
    return _purpose(brief, state)


REPEAT_LEADS = ("Sorry, I said:", "Let me say that again:", "Once more:", "What I said was:")


def _repeat(state: Snapshot) -> Move:
    """Say the last real utterance again, led in a way not used yet (never a verbatim repeat)."""
    last = next(
        (said for said, kind in zip(reversed(state.said), reversed(state.said_by), strict=True) if kind != "repeat"),
        state.said[-1],
    )
    lead = REPEAT_LEADS[state.times_used("repeat") % len(REPEAT_LEADS)]
    return Move("repeat", f"{lead} {last}")


def _purpose(brief: Brief, state: Snapshot) -> Move:
    said = brief.purpose()
    if not brief.want.is_empty() and not content_words(brief.want.spoken()) <= content_words(brief.objective):
        said = f"{said} Any {brief.want.spoken()} would work."
    if state.times_used("purpose") >= 1 or state.said_before(said):
        said = f"Sorry, let me say it again. {said}"
    if state.times_used("purpose") >= 3:
        return Move("close-confused", "I'm sorry, I'll try again another time. Thank you, goodbye.", tags=HANGUP)
    return Move("purpose", said, hint=f"Say why you are calling: {brief.objective}.")


def _ask_alternative(brief: Brief, state: Snapshot, prefix: str = "") -> Move:
    if state.alternatives_asked >= 2:
        principal = brief.principal or "them"
        return Move(
            "close-unavailable",
            f"{prefix} I'm afraid that doesn't suit {principal}. Thank you for checking, goodbye.".strip(),
            tags=HANGUP,
        )
    ask = f"Do you have anything on a {brief.want.spoken()} instead?"
    if state.alternatives_asked == 1:
        ask = f"Is there really nothing on a {brief.want.spoken()}? Any week would do."
    say = f"{prefix} {ask}".strip()
    return Move("ask-alternative", say, hint=f"Politely say that does not suit and ask for {brief.want.spoken()}.")


def _answers(brief: Brief, state: Snapshot, heard: Heard) -> str:
    """Plain answers to what they asked, from the goal's facts only ("" when nothing was asked)."""
    if not heard.question and not heard.asks:
        return ""
    parts: list[str] = []
    forbidden = _forbidden(brief, heard)
    if forbidden:
        parts.append("I'm sorry, I can't share that.")
    if "robot" in heard.asks:
        behalf = f" calling for {brief.principal}" if brief.principal else ""
        parts.append(f"Yes, I'm an automated assistant{behalf}.")
    if "your_name" in heard.asks:
        parts.append(f"This is {brief.name}" + (f", calling for {brief.principal}." if brief.principal else "."))
    elif "behalf" in heard.asks and brief.principal:
        parts.append(f"I'm calling for {brief.principal}.")
    if "name" in heard.asks and "spell" not in heard.asks:
        parts.append(f"The name is {brief.principal}." if brief.principal else f"My name is {brief.name}.")
    if "spell" in heard.asks:
        word = (brief.principal or brief.name).split()[-1]
        parts.append(f"{word}: " + ", ".join(word.upper()) + ".")
    used: set[str] = set()
    for key in ("number", "phone"):
        if key in heard.asks and not forbidden:
            fact = _phone_fact(brief) if key == "phone" else _fact_about(brief, {"number", "id", "account"}, used)
            if fact and fact not in used:
                parts.append(fact)
                used.add(fact)
            elif key == "phone" and not fact:
                parts.append("I'm sorry, I don't have a number to give you.")
    if "when" in heard.asks and not brief.want.is_empty() and not heard.offers:
        parts.append(f"Any {brief.want.spoken()} would work.")
    if not parts and not heard.asks and heard.question and not heard.offers and not forbidden:
        asked = content_words(heard.text)
        fact = _fact_about(brief, asked - content_words(brief.principal or ""), used)
        if fact:
            parts.append(fact)
        elif len(asked & content_words(f"{brief.principal or ''} {brief.objective}")) >= 2:
            parts.append("Yes, that's right.")  # "Is this for Sam Taylor?", "Is it about Sam's cleaning?"
    return " ".join(parts)


def _phone_fact(brief: Brief) -> str | None:
    """A fact that gives a phone number (never a patient or account number)."""
    for fact in brief.sayable_facts():
        if re.search(r"\b(?:phone|call|reach|mobile|cell)\b", fact, re.I) or re.search(r"(?:\d[\s().-]?){7,}", fact):
            return fact
    return None


def _forbidden(brief: Brief, heard: Heard) -> bool:
    """They ask for something a Never rule protects (e.g. "date of birth")."""
    asked = content_words(heard.text)
    if "birth" in heard.asks and any("birth" in rule.lower() for rule in brief.never):
        return True
    return any(words <= asked or len(words & asked) >= 2 for words in brief.protected())


def _fact_about(brief: Brief, words: set[str], used: set[str]) -> str | None:
    """The goal fact sharing the most words with `words` (at least one)."""
    best, score = None, 0
    for fact in brief.sayable_facts():
        if fact in used:
            continue
        overlap = len(content_words(fact) & words)
        if overlap > score:
            best, score = fact, overlap
    return best


def _same_slot(a: Slot, b: Slot) -> bool:
    """The same day and time, however it was written ("9.30" and "930")."""
    return a.day is not None and a.day == b.day and a.hour is not None and (a.hour, a.minute) == (b.hour, b.minute)


def _keys(slot: Slot) -> tuple[str, ...]:
    keys = []
    if slot.day:
        keys.append(slot.day)
    if slot.hour is not None:
        keys.extend(w.lower() for w in re.findall(r"\w+", slot.text) if w.lower() not in ("at", "in", "the", "on"))
    return tuple(keys)


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


# ---- inbound: they called; we take a message or turn a sale away ---------------------------------


def _inbound(brief: Brief, state: Snapshot, heard: Heard) -> Move:
    principal = brief.principal or "them"
    if heard.sales and not state.caller_reason:
        return Move("close-sales", f"Thank you, but {principal} isn't interested. Goodbye.", tags=HANGUP)
    name = state.caller_name.text if state.caller_name else heard.their_name
    phone = state.caller_phone.text if state.caller_phone else heard.phone
    reason = state.caller_reason.text if state.caller_reason else heard.reason
    if heard.stop or (heard.goodbye and not heard.question):
        if name and reason:  # they are leaving with the message given: say it will reach the principal
            return Move("close-message", f"Thank you, {name}. I'll give {principal} the message. Goodbye.", tags=HANGUP)
        return Move("close-goodbye", "Thank you for calling, goodbye.", tags=HANGUP)
    if reason is None and heard.text and not heard.question and len(heard.text.split()) >= 4 and name and state.heard:
        reason = heard.text  # a plain statement after the introductions is the reason
    refuse = "I'm sorry, I can't say. " if heard.question and _forbidden_inbound(brief, heard) else ""
    if "principal" in heard.asks and not refuse and brief.principal:
        refuse = f"{brief.principal} can't come to the phone right now. "
    if not name:
        return Move("ask-name", f"{refuse}May I have your name, please?")
    if not reason:
        return Move("ask-reason", f"{refuse}Thank you, {name}. What is the call about?")
    if not phone:
        return Move("ask-phone", f"{refuse}And what's the best number for {principal} to call you back?")
    message = _third_person(reason)
    return Move(
        "close-message",
        f"Thank you, {name}. I'll tell {principal} that {message}, and to call you back at {phone}. Goodbye.",
        tags=HANGUP,
    )


def _forbidden_inbound(brief: Brief, heard: Heard) -> bool:
    if _forbidden(brief, heard):
        return True
    return bool(re.search(r"\bwhere (?:is|are)\b|\bwhen (?:will|is) .* back\b|\bcome back\b", heard.text, re.I))


_SWAPS = (
    (r"\bi'?m calling (about|regarding|because|to|for)\b", r"you called \1"),
    (r"\bi'?d\b", "you'd"),
    (r"\bi'?m\b", "you're"),
    (r"\bi am\b", "you are"),
    (r"\bi'?ve\b", "you've"),
    (r"\bi\b", "you"),
    (r"\bmy\b", "your"),
    (r"\bme\b", "you"),
)


def _third_person(reason: str) -> str:
    text = re.split(r"(?<=[.!?])\s+", reason.strip())[0].rstrip(".!?")  # the reason's first sentence
    for pattern, replacement in _SWAPS:
        text = re.sub(pattern, replacement, text, flags=re.I)
    text = text[:1].lower() + text[1:]
    return text if text.startswith("you") else f"you called about {text}"
