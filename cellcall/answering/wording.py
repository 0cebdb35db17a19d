"""What one utterance of the far end sounds like, from its words alone: a person, or a machine of a kind.

Wrong in one direction is much worse than the other: hanging up on a person who was taken for a
mailbox loses the call, while a mailbox taken for a person only costs a few seconds (its greeting ends
with a beep, and the next utterance is screened again). So a machine needs wording a person does not
use when they pick up: "leave a message after the tone", "press 2 for", "your call is important".
"Can I take a message?" or "she can't come to the phone right now" are a person's words.
"""

from __future__ import annotations

import enum
import re


class Heard(str, enum.Enum):
    PERSON = "person"  # nothing machine-like: a person, or words too short to tell
    MAILBOX = "mailbox"  # an answering machine's greeting
    MAILBOX_FULL = "mailbox-full"  # the mailbox takes no message
    MENU = "menu"  # a phone menu: "for appointments, press 2"
    HOLD = "hold"  # "please hold", "your call is important to us"
    UNAVAILABLE = "unavailable"  # the network's "the number you dialled is not available"


_NUMBER = r"(?:\d|one|two|three|four|five|six|seven|eight|nine|zero|star|pound|hash)"

_PATTERNS: tuple[tuple[Heard, re.Pattern[str]], ...] = (
    (
        Heard.MAILBOX_FULL,
        re.compile(
            r"mail ?box (?:is |has been )?full|(?:cannot|can ?not|can'?t|unable to|not able to) (?:accept|take|receive|record) "
            r"(?:any )?(?:more |new |further )?messages",
        ),
    ),
    (
        Heard.MAILBOX,
        re.compile(
            r"(?:after|at) the (?:tone|beep)|voice ?mail|reached the voice ?\w* of|mail ?box|answering (?:machine|service)|record (?:your|a) message"
            r"|(?:please|just|kindly|simply) leave (?:me |us )?(?:a |your )|leave (?:a |your )(?:brief |short |detailed )?"
            r"(?:message|name)[^?]{0,40}(?:and|after|at) |(?:i|we)(?:'ll| will) (?:call|get back to) you (?:back )?"
            r"(?:as soon as|when|shortly)|not available to (?:take|answer) (?:your|the) call",
        ),
    ),
    (
        Heard.UNAVAILABLE,
        re.compile(
            r"(?:number|subscriber|customer|person|mobile) (?:you|that you) (?:have |are )?(?:dialled|dialed|called|calling|"
            r"trying to reach|reached)[^.]{0,30}?(?:is|has been|was) (?:not|no longer|temporarily|currently|switched|unavailable)"
            r"|(?:dialled|dialed) (?:is|has been|was) (?:not|no longer|temporarily|currently|switched|unavailable)"
            r"|(?:is|number) not in service|call cannot be completed|not a working number|cannot be reached at (?:the|this) moment"
            r"|(?:is|has been) switched off",
        ),
    ),
    (
        Heard.MENU,
        re.compile(
            rf"\b(?:press|dial|select|enter)(?:ing)? {_NUMBER}\b|\boption {_NUMBER}\b|\bpara (?:español|espanol)"
            rf"|\b{_NUMBER} (?:for|to) (?:\w+ ){{0,3}}\w+[,.;] (?:{_NUMBER}|press)",
        ),
    ),
    (
        Heard.HOLD,
        re.compile(
            r"please (?:hold|continue to hold|stay on the line|remain on the line)|(?:stay|remain) on the line"
            r"|your call is (?:important|valuable|very important)|(?:all|each) (?:of )?our (?:\w+ ){0,2}(?:are|is) "
            r"(?:currently |still )?(?:busy|assisting|helping|on (?:other|another) calls?)|(?:next|first) available "
            r"(?:agent|representative|person|member|advisor)|will be with you (?:shortly|soon|in a moment)"
            r"|you are (?:number|caller) \w+ in|(?:on|in) the queue|thank you for (?:holding|your patience)[^?]*$",
        ),
    ),
)


def heard(text: str) -> Heard:
    """The kind of thing these words are; PERSON unless a machine's wording is in them."""
    words = " ".join(text.lower().replace("’", "'").split())
    for kind, pattern in _PATTERNS:
        if pattern.search(words):
            return kind
    return Heard.PERSON
