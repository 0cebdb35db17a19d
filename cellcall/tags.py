"""The control tags a reply can carry: one name each, shared by the model's output parser, the agent's
moves, the voice loop and the report (a str enum, so a tag read from text compares equal to its member)."""

from __future__ import annotations

import enum


class Tag(str, enum.Enum):
    HANGUP = "HANGUP"  # say goodbye, then hang up once it has played
    OBJECTIVE_MET = "OBJECTIVE_MET"  # the agent believes it is done (never evidence for the report)
    VOICEMAIL = "VOICEMAIL"  # an answering machine answered


STOP_TAGS = frozenset({Tag.HANGUP, Tag.VOICEMAIL})  # nothing after these is spoken
