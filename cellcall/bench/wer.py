"""Word error rate, the figure every STT comparison in this project is judged by.

Text is normalised first (lower case, punctuation dropped, "Mr." -> mister) so that a path is not
charged for Whisper's spelling choices, only for words it heard wrong.
"""

from __future__ import annotations

import re

_SPELLINGS = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def words(text: str) -> list[str]:
    tokens = re.sub(r"[^a-z0-9' ]", " ", text.lower().replace("-", " ")).split()
    return [_SPELLINGS.get(token, token) for token in tokens]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance over the reference length."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (r != h))
    return row[len(hyp)] / max(1, len(ref))
