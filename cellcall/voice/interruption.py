"""Barge-in that only the caller's real interruptions win: stop at once, then decide, then go on or yield.

The first 60 ms of "mm-hm" and of "sorry, wait" sound alike, so the agent's audio stops at once either
way (the caller must not talk over us for long), and the reply is paused, not dropped. What follows
decides: speech that goes on past `BACKCHANNEL_MAX_MS` is an interruption; a short sound whose words
are a backchannel ("mm-hm", "okay", "right"), or no words at all (a cough, a knock), lets the reply
go on from the word it was in; any other short words ("wait", "no") are an interruption. A decision
that takes longer than `DECIDE_MAX_S` yields: the caller is answered rather than talked over.

Pure logic on frames and words: the loop (cellcall.voice.loop) owns the one `PausedReply` at a time,
on its own thread, and does what the verdict says.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from cellcall.agent.understand import LISTENING_ONLY
from cellcall.line import FRAME_MS

if TYPE_CHECKING:
    from cellcall.voice.reply import Reply  # reply -> playback -> this module: typing only

BACKCHANNEL_MAX_MS = 700  # caller speech longer than this (since the onset) is a turn, not a backchannel
QUIET_RESUME_MS = 300  # a sound too short to be a turn, then this much quiet: go on
DECIDE_MAX_S = 2.0  # no verdict by then (a slow recogniser): answer the caller instead
_ANNOTATION = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")  # whisper's "(coughs)", "[NOISE]", "*sigh*"
_TAKES_FLOOR = re.compile(
    r"\b(?:wait|stop|no|nope|not|don'?t|isn'?t|wrong|sorry|pardon|excuse|hold|hang|hello|hey|what|who|when|where"
    r"|why|how|actually|but|can|could)\b",
    re.I,
)  # short words that want the floor, however short the sound
SHORT_SOUND_MS = 500
STRAY_WORDS = 3  # a sound under SHORT_SOUND_MS read as this many words or fewer: whisper heard "mm-hm" as "and make them."
REWIND_MS = 300  # going on, start at the quietest 20 ms of the last this-many ms heard: a word boundary


def is_backchannel(text: str, speech_ms: int = BACKCHANNEL_MAX_MS) -> bool:
    """Words that only say "I'm listening" (the agent's own list, cellcall.agent.understand); "" counts
    too (a cough or a knock recognised as nothing). A sound under `SHORT_SOUND_MS` read as a word or a
    few that claim nothing counts as well: the recogniser often hears "mm-hm" as stray words ("me", "and make
    them."); three real words rarely fit in half a second."""
    text = _ANNOTATION.sub(" ", text).strip(" .,!")
    if not text or LISTENING_ONLY.search(text):
        return True
    stray = speech_ms <= SHORT_SOUND_MS and len(text.split()) <= STRAY_WORDS and "?" not in text
    return stray and not _TAKES_FLOOR.search(text)


class Verdict(str, enum.Enum):
    WAIT = "wait"
    RESUME = "resume"  # the reply goes on
    YIELD = "yield"  # the caller has the floor: the paused reply ends as cut


@dataclass
class PausedReply:
    """A reply stopped by caller speech, until the verdict; `rest` is its audio that had not played
    yet, as (sentence, pcm) at the line's rate."""

    reply: Reply
    paused_at: float
    onset: float  # when the caller's speech began (monotonic)
    rest: list[tuple[int, bytes]]
    speech_ms: int = 0
    quiet_ms: int = 0

    def hear(self, caller: bool) -> None:
        """One 20 ms frame's decision (echo already excluded)."""
        if caller:
            self.speech_ms += FRAME_MS
            self.quiet_ms = 0
        else:
            self.quiet_ms += FRAME_MS

    def verdict(self, now: float, words: str | None, in_turn: bool) -> Verdict:
        """`words`: the recognised text of the caller's sound once known; `in_turn`: the endpointer holds a
        caller turn (the sound was long enough to be one)."""
        heard_ms = self.speech_ms + round((self.paused_at - self.onset) * 1000)
        if heard_ms > BACKCHANNEL_MAX_MS:
            return Verdict.YIELD
        if words is not None:
            return Verdict.RESUME if is_backchannel(words, heard_ms) else Verdict.YIELD
        if not in_turn and self.quiet_ms >= QUIET_RESUME_MS:
            return Verdict.RESUME
        if now - self.paused_at >= DECIDE_MAX_S:
            return Verdict.YIELD
        return Verdict.WAIT


def resume_offset(pcm: bytes, played: int, rate: int) -> int:
    """Byte offset to go on from in `pcm` when `played` bytes of it were heard: the quietest 20 ms frame
    of the last REWIND_MS (a gap between words), so the caller does not hear half a word twice."""
    frame = rate * FRAME_MS // 1000 * 2
    played -= played % 2
    start = max(0, played - rate * REWIND_MS // 1000 * 2)
    window = np.frombuffer(pcm[start:played], dtype="<i2").astype(np.float32)
    frames = window.size * 2 // frame
    if frames < 2:
        return played
    energy = np.square(window[: frames * frame // 2].reshape(frames, -1)).mean(axis=1)
    return start + int(np.argmin(energy)) * frame
