"""The last check before a sentence of the model's is spoken.

A small model reads its own stage directions aloud ("(greet them, in one sentence)"), writes role labels
("Receptionist: ..."), speaks as the other party ("How can I help you?", or their own words back),
repeats itself, invents numbers or says goodbye in the middle of a call. Each of those is refused here, and the move's own plain wording
is spoken instead. Pure functions; microseconds per sentence.
"""

from __future__ import annotations

import re

from cellcall.agent.dialogue import Snapshot, normalised

_LABEL = re.compile(r"^\s*[\"']?\s*(?P<label>[A-Za-z][\w .'-]{0,24}?)\s*:\s+(?=\S)")
OWN_LABELS = frozenset("assistant agent ai me bot".split())  # stripped: the words after it are ours
OTHER_LABELS = frozenset("user receptionist caller callee them they you system human person other customer".split())
_STAGE = re.compile(r"\([^)]*\)?|\[[^\]]*\]?|\*[^*]*\*?|\{[^}]*\}?|<[^>]*>?")
INSTRUCTION_WORDS = re.compile(
    r"\b(?:next step|they said|in one (?:short )?sentence|one short sentence|the objective|your (?:goal|objective)|"
    r"system prompt|instructions?|as an ai|language model|user message|reply with|stage direction|respond with)\b",
    re.I,
)
HELPER_SPEAK = re.compile(
    r"\b(?:how (?:can|may) i (?:help|assist)|i can help you|what can i do for you|thank(?:s| you) for calling|"
    r"is there anything (?:else )?i can (?:help|do)|welcome to|let me (?:check|look) (?:that|our|the) (?:schedule|calendar|system))\b",
    re.I,
)
ECHO_MIN_WORDS = 4  # "Sure, I can help with that." heard, then said back by a small model
GOODBYE = re.compile(r"\b(?:good ?bye|bye)\b", re.I)
_NUMBER = re.compile(r"\d+")


def clean(sentence: str, agent_name: str) -> str:
    """The sentence without a leading role label, stage directions or wrapping quotes.

    "" when the model wrote the other party's line ("Receptionist: We have Friday.")."""
    text = sentence.strip()
    label = _LABEL.match(text)
    if label:
        name = label.group("label").lower()
        if name in OTHER_LABELS:
            return ""
        if name in OWN_LABELS or name == agent_name.lower():
            text = text[label.end() :]
    text = _STAGE.sub(" ", text)
    text = " ".join(text.split()).strip(" \"'")
    return text


def echoes(text: str, heard: tuple[str, ...]) -> bool:
    """The words are the other party's own, in their order: spoken, the agent would play their part."""
    key = normalised(text)
    return bool(key) and any(f" {key} " in f" {normalised(words)} " for words in heard)


def refusal(
    text: str,
    *,
    state: Snapshot,
    known: str,
    heard: tuple[str, ...],
    must_mention: tuple[str, ...],
    closing: bool,
    outbound: bool,
) -> str | None:
    """Why `text` (already cleaned) must not be spoken, or None when it may; `heard`: the other party's turns."""
    words = normalised(text).split()
    if len(words) < 2 and not closing:
        return "too short"
    if INSTRUCTION_WORDS.search(text):
        return "reads the instructions"
    if outbound and HELPER_SPEAK.search(text):
        return "speaks as the other party"
    if state.said_before(text):
        return "repeats itself"
    if len(words) >= ECHO_MIN_WORDS and echoes(text, heard):
        return "speaks the other party's words"
    if must_mention and not any(key in normalised(text) for key in must_mention):
        return "misses the point of the move"
    if not closing and GOODBYE.search(text):
        return "says goodbye mid-call"
    invented = set(_NUMBER.findall(text)) - set(_NUMBER.findall(known))
    if invented:
        return f"invents numbers {sorted(invented)}"
    return None
