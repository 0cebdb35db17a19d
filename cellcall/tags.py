"""The control tags a reply can carry: one name each, shared by the model's output parser, the agent's
moves, the voice loop and the report (a str enum, so a tag read from text compares equal to its member)."""

from __future__ import annotations

import enum


class Tag(str, enum.Enum):
    HANGUP = "HANGUP"  # say goodbye, then hang up once it has played
    OBJECTIVE_MET = "OBJECTIVE_MET"  # the agent believes it is done (never evidence for the report)
    VOICEMAIL = "VOICEMAIL"  # an answering machine answered
    DTMF = "DTMF"  # press keys: "[DTMF 2]" (the keys ride in the reply's `keys`, never spoken)
    SCREENED = "SCREENED"  # the far end's words were a machine's (a menu, a mailbox, hold): not answered


STOP_TAGS = frozenset({Tag.HANGUP, Tag.VOICEMAIL, Tag.SCREENED})  # nothing after these is spoken
