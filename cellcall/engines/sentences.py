"""Cut an LLM token stream into speakable sentences, lifting control tags out of the text.

TTS starts on the first complete sentence instead of the whole reply, which is most of the
perceived latency of a streamed answer. The model signals call control with inline tags
([HANGUP], [OBJECTIVE_MET], [VOICEMAIL], [DTMF 2] to press keys); they may arrive split across tokens
("[HANG", "UP]"), so text that could still become a tag is held back until it is decided.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cellcall.tags import Tag

TAGS = tuple(tag.value for tag in Tag)
FIRST_CUT_CHARS = 60  # a first sentence longer than this is cut at a comma to start TTS sooner
_MIN_CLAUSE_CHARS = 12  # never cut a first clause shorter than this

_TAG = re.compile(r"\[\s*(HANG[\s_-]*UP|OBJECTIVE[\s_-]*MET|VOICE[\s_-]*MAIL)\s*\]", re.I)
_DTMF = re.compile(r"\[\s*DTMF[\s:=_-]*([0-9*#A-D]{1,16})\s*\]", re.I)
_END = re.compile(r"[.!?]+[\"')\]]*(?=\s)|\n+")
_COMMA = re.compile(r"[,;:](?=\s)")
_ABBREVIATIONS = frozenset("mr mrs ms dr st jr sr vs etc e.g i.e a.m p.m no approx appt dept inc ltd co mt ft ave blvd".split())


@dataclass(frozen=True)
class Sentence:
    """Spoken text (tags removed; may be empty when only tags remain) and the tags it carried."""

    text: str
    tags: frozenset[str]
    keys: str = ""  # DTMF keys a [DTMF n] tag asked for


def _canonical(tag_text: str) -> str:
    letters = re.sub(r"[^A-Z]", "", tag_text.upper())
    return {tag.value.replace("_", ""): tag.value for tag in Tag}[letters]


def _could_be_tag(fragment: str) -> bool:
    """True when `fragment` (starting at '[') may still grow into a control tag."""
    letters = re.sub(r"[\s_:=0-9*#-]", "", fragment[1:]).upper()
    return len(fragment) < 24 and any(tag.replace("_", "").startswith(letters) for tag in TAGS)


def _clean(text: str) -> str:
    return " ".join(text.split())


def _is_abbreviation(text: str, end: int) -> bool:
    """A period that ends 'Dr.' or a single initial is not the end of a sentence."""
    words = text[:end].split()
    if not words or text[end - 1] != ".":
        return False
    word = words[-1].rstrip(".").lower().lstrip("(\"'")
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


class SentenceSplitter:
    """Incremental splitter: feed token texts, collect finished sentences; `close()` flushes."""

    def __init__(self, first_cut_chars: int = FIRST_CUT_CHARS) -> None:
        self._buffer = ""
        self._tags: set[str] = set()
        self._keys = ""
        self._emitted = 0
        self._first_cut_chars = first_cut_chars

    def feed(self, token: str) -> list[Sentence]:
        self._buffer += token
        self._lift_tags()
        out: list[Sentence] = []
        while (cut := self._boundary()) is not None:
            out.extend(self._emit(self._buffer[:cut]))
            self._buffer = self._buffer[cut:]
        return out

    def close(self) -> list[Sentence]:
        """Flush the rest; a tag cut off by the token limit ("[HANG") is dropped, never spoken."""
        self._lift_tags()
        rest, self._buffer = self._buffer[: self._decided_length()], ""
        if _clean(rest) or self._tags:
            return self._emit(rest, final=True)
        return []

    def _lift_tags(self) -> None:
        for match in _TAG.finditer(self._buffer):
            self._tags.add(_canonical(match.group(1)))
        for match in _DTMF.finditer(self._buffer):
            self._tags.add(Tag.DTMF.value)
            self._keys += match.group(1).upper()
        self._buffer = _DTMF.sub(" ", _TAG.sub(" ", self._buffer))

    def _decided_length(self) -> int:
        """Length of the buffer prefix that can no longer be part of a pending tag."""
        start = self._buffer.rfind("[")
        if start >= 0 and "]" not in self._buffer[start:] and _could_be_tag(self._buffer[start:]):
            return start
        return len(self._buffer)

    def _boundary(self) -> int | None:
        decided = self._buffer[: self._decided_length()]
        for match in _END.finditer(decided):
            if not _is_abbreviation(decided, match.end()) or match.group().startswith("\n"):
                if _clean(decided[: match.end()]):
                    return match.end()
        if self._emitted == 0 and len(decided) > self._first_cut_chars:
            commas = [m.end() for m in _COMMA.finditer(decided) if m.end() >= _MIN_CLAUSE_CHARS]
            if commas:
                return commas[-1]
        return None

    def _emit(self, text: str, final: bool = False) -> list[Sentence]:
        spoken = _clean(text)
        if not spoken and not final:
            return []
        sentence = Sentence(spoken, frozenset(self._tags), self._keys)
        self._tags.clear()
        self._keys = ""
        self._emitted += 1
        return [sentence]


def split_sentences(tokens: Iterable[str]) -> Iterator[Sentence]:
    """Yield each sentence as soon as it is complete; tags anywhere are attached, never spoken."""
    splitter = SentenceSplitter()
    for token in tokens:
        yield from splitter.feed(token)
    yield from splitter.close()
