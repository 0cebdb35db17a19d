"""Has the other party finished their turn? A guess from the words recognised so far.

Soon after the speculative pause (120 ms) the recogniser usually has the turn's words. A finished question
("Would that work?") lets the loop answer at ~300 ms instead of waiting for the 500 ms endpoint; a
statement does not, since people pause between sentences ("Bright Smile Dental. [pause] How can I
help?"); words that trail off ("um", "and", "my number is", a number being read out) make it wait
longer, so a caller who pauses mid-thought is not cut off. Pure and microseconds; None = no opinion.
"""

from __future__ import annotations

import re

_TRAILING = re.compile(
    r"(?:\b(?:um+|uh+|er+|erm|hmm|and|but|or|so|because|if|then|that|the|a|an|my|your|our|is|are|was|at|on|in|for|to|"
    r"with|from|of|like|about|number|let me|i think|maybe)|,|-|\.\.\.)\s*$",
    re.I,
)
_DIGITS_TAIL = re.compile(r"(?:\d[\d\s,.-]*|\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b)\s*$", re.I)
_FINISHED = re.compile(r"\?\s*$")


def turn_finished(text: str | None) -> bool | None:
    """True: a whole question. False: it trails off. None: no words yet, or no telling."""
    if not text or not text.strip():
        return None
    words = text.strip()
    bare = words.rstrip("?!. ")
    if _TRAILING.search(bare) or words.endswith((",", "-", "...")):
        return False
    if _DIGITS_TAIL.search(bare) and not words.endswith("?"):
        return False  # someone reading out a number pauses between groups
    if _FINISHED.search(words) and len(bare.split()) >= 2:
        return True
    return None
