"""What the other party just said, read by code in microseconds: questions, offers, yes/no, goodbyes.

The words come from speech recognition and from a stranger: they are untrusted text, used only to pick
the agent's next move and never obeyed as instructions ("ignore your instructions" is just words).
Patterns stay lenient because recognition drops punctuation and mishears short words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cellcall.agent.when import Slot, slots_in
from cellcall.engines.grounding import SEE_YOU_WHEN

_NEGATION = r"(?:not|n't|no|never|nothing|none|unable|cannot|can ?not|if)"


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


QUESTION_START = _rx(
    r"^(?:so |and |ok(?:ay)?,? |alright,? |sure,? |great,? |thanks?,? |thank you,? )*"
    r"(?:who|what|when|where|which|why|how|can|could|would|will|do|does|did|is|are|was|may|shall|should)\b"
)
ASKS = {
    "name": _rx(
        r"\b(?:(?:the|patient'?s?|client'?s?|customer'?s?|his|her|their|full|last|first) name|name (?:of|on) the (?:patient|account|booking|appointment)|name,? please)\b"
    ),
    "your_name": _rx(
        r"\b(?:your name|who (?:is|am i) (?:this|speaking|calling|talking)|who'?s (?:calling|this)|who are you|who is speaking)\b"
    ),
    "spell": _rx(r"\bspell\b"),
    "robot": _rx(
        r"\b(?:are you (?:a |an )?(?:robot|bot|machine|computer|real person|human|ai)\b|is this (?:a |an )?(?:robot|automated|recording|machine|real person)\b)"
    ),
    "principal": _rx(r"\b(?:(?:can|could|may) i (?:speak|talk) (?:to|with)|is \w+ (?:there|available|around|in)\b|put \w+ on)"),
    "number": _rx(
        r"\b(?:patient|account|member|customer|policy|reference|order|case|file|id) ?(?:number|no\.?|id)\b|\bnumber on (?:file|the account)\b"
    ),
    "phone": _rx(
        r"\b(?:phone|call ?back|contact|reach (?:you|them|him|her))\b.*\bnumber\b|\bnumber (?:to|where|at which) .*\breach\b|\bbest number\b|\bwhat'?s your number\b|\byour number\b"
    ),
    "birth": _rx(r"\b(?:date of birth|birth ?date|birthday|born|d\.?o\.?b)\b"),
    "reason": _rx(
        r"\b(?:what(?:'s| is) (?:this|it|the call) (?:about|regarding)|reason for (?:the|your) call|what can i (?:do|help)|how can i help|how may i (?:help|assist)|what do you need|what are you calling about|what'?s up)\b"
    ),
    "when": _rx(
        r"\b(?:what|which) (?:day|time|date|days|times)\b|\bwhen (?:would|do|does|is|are|works?)\b|\bwhat works\b|\bwould work (?:better|best)\b|\bpreference\b|\bprefer\b"
    ),
    "urgency": _rx(r"\burgent\b|\bhow soon\b|\bemergency\b"),
    "behalf": _rx(
        r"\b(?:(?:you'?re|you are|are you) calling (?:for|on behalf of)|who (?:is|are) you calling (?:for|about)|on whose behalf|who do you (?:represent|work for))\b"
    ),
}
OFFER = _rx(
    r"\b(?:have|got|there'?s|there is|available|open(?:ing)?s?|free|could do|can do|can offer|how about|what about|would .* work|does .* work|works?)\b"
)
CONFIRMED = _rx(
    r"\b(?:you'?re (?:all )?(?:booked|set|scheduled|confirmed)|(?:is|are|been|now|all|has|have) (?:book(?:ed)?|scheduled|confirmed|moved|rescheduled|changed|set)\b"
    r"|i(?:'ve| have) (?:booked|moved|scheduled|changed|put|got) |(?:book(?:ed)?|scheduled|confirmed|moved|rescheduled) (?:for|on|at|in|to)\b|that'?s (?:done|confirmed|booked)"
    rf"|all set|see (?:you|him|her|them|sam) (?:{SEE_YOU_WHEN})|i'?ll (?:put|book|schedule|note|pass|give|tell|let)|message (?:taken|received)|got it down|noted)"
)
UNAVAILABLE = _rx(
    r"\b(?:no (?:openings?|availability|slots?|appointments?|times?)|nothing (?:available|free|open|left|on|for|in|this|next|until)|"
    r"there'?s nothing|fully booked|booked up|no \w+days?\b|"
    r"(?:don'?t|do not) have (?:any|anything)|(?:is|are) (?:taken|gone|full)|not available|unavailable|can'?t (?:do|offer|book|fit)|"
    r"(?:we'?re|we are) closed|(?:aren'?t|are not|don'?t|do not) open)\b"
)
DECLINE = _rx(
    r"^(?:no\b|nope\b|sorry\b|unfortunately\b|i'?m afraid\b)|\b(?:i can'?t|we can'?t|we don'?t|that won'?t|doesn'?t work|not possible)\b"
)
AGREE = _rx(
    r"^(?:yes|yeah|yep|sure|of course|okay|ok|alright|absolutely|certainly|great|perfect|sounds good|that works|will do)\b"
)
GOODBYE = _rx(r"\b(?:good ?bye|bye|have a (?:nice|good|great) (?:day|one|afternoon|evening)|take care|talk (?:to you )?soon)\b")
STOP = _rx(
    r"\b(?:(?:don'?t|do not|stop) call(?:ing)?|remove (?:me|this number)|not interested|take me off|leave me alone|hang(?:ing)? up)\b"
)
REPEAT = _rx(
    r"^(?:sorry|pardon|what|huh|excuse me)(?:\s*(?:me|what|who|again|sorry))*\s*[?.!]*$|\b(?:come again|say (?:that|it) again|"
    r"(?:didn'?t|did not) (?:catch|hear|get|understand) (?:that|you|what you said)|(?:can|could|would) you repeat|repeat that|one more time)\b"
)
_LISTENING = r"(?:mm+[ -]?hm+|m+hm+|mm+|uh[ -]?huh|yeah|yes|yep|ok(?:ay)?|right|sure|i see|got it|alright|ah|oh|hm+|uh[ -]?hm+)"
BACKCHANNEL = _rx(rf"^{_LISTENING}[.!,]*$")
LISTENING_ONLY = _rx(rf"^(?:{_LISTENING}[\s.!,]*){{1,3}}$")  # "Mm-hm, okay." said over the agent: go on
LATER = _rx(
    r"\b(?:call (?:us |me |again )?(?:back )?later|try (?:again )?later|not a good time|bad time|busy right now|in a meeting|another call)\b"
)
HOLD = _rx(
    r"\b(?:hold on|one (?:moment|second|sec)|just a (?:moment|second|sec|minute)|let me (?:check|see|look|find|pull)|bear with me|please hold)\b"
)
SALES = _rx(
    r"\b(?:special offer|promotion|limited time|deal|discount|save (?:money|up to|\d)|free (?:quote|trial|estimate|gift)|warranty|"
    r"interested in|sign (?:you )?up|solar|insurance (?:plan|quote)|vacation|prize|won|subscription|lower your)\b"
)
MESSAGE = _rx(
    r"\b(?:leave (?:a )?message|take a message|pass (?:it|this|a message) on|tell (?:him|her|them|sam)|let (?:him|her|them) know|call (?:me )?back)\b"
)
THEIR_NAME = re.compile(  # the lead-in in any case, the name itself capitalised as recognition writes names
    r"(?i:\b(?:this is|my name is|my name'?s|it'?s|i'?m|i am|name is)\s+)((?:(?:Dr|Mr|Mrs|Ms)\.?\s+)?[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)"
)
NOT_A_NAME = frozenset(
    "calling sorry fine good just here the a an not afraid ok okay sure glad happy looking trying wondering from with".split()
)
DIGITS = _rx(r"(?:\+?\d[\d\s().-]{5,}\d)|(?:\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b[\s,-]*){7,}")
REASON = _rx(
    r"\b(?:i'?m calling (?:about|because|to|regarding|for)|calling (?:about|regarding)|i'?d like to|i want(?:ed)? to|i need(?:ed)? to|it'?s about|regarding|the reason)\b"
)


@dataclass(frozen=True)
class Heard:
    """One turn of the other party, classified. `text` is untrusted and kept only for quoting."""

    text: str
    question: bool = False
    asks: frozenset[str] = field(default_factory=frozenset)  # keys of ASKS
    offers: tuple[Slot, ...] = ()
    slots: tuple[Slot, ...] = ()  # every day/time mentioned, offered or not
    confirmed: bool = False
    unavailable: bool = False
    declined: bool = False
    agreed: bool = False
    goodbye: bool = False
    stop: bool = False
    hold: bool = False
    later: bool = False  # "please call back later"
    repeat: bool = False  # "sorry, what?": they did not catch the agent's last words
    backchannel: bool = False  # "mm-hm", "okay": listening, not taking the turn
    sales: bool = False
    message: bool = False
    their_name: str | None = None
    phone: str | None = None
    reason: str | None = None


def _negated(text: str, match: re.Match[str]) -> bool:
    before = text[max(0, match.start() - 24) : match.start()]
    return bool(re.search(rf"\b{_NEGATION}\b[\w\s']*$", before, re.I))


def _hit(pattern: re.Pattern[str], text: str) -> bool:
    match = pattern.search(text)
    return match is not None and not _negated(text, match)


def hear(text: str) -> Heard:
    """Classify one of the other party's turns (pure; microseconds)."""
    clean = " ".join(text.split())
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", clean) if s]
    question = "?" in clean or any(QUESTION_START.search(s) for s in sentences[-2:])
    asks = frozenset(key for key, pattern in ASKS.items() if pattern.search(clean))
    slots = tuple(slots_in(clean))
    unavailable = bool(UNAVAILABLE.search(clean))
    confirmed = _hit(CONFIRMED, clean) and not unavailable
    offers = slots if (slots and (OFFER.search(clean) or question)) and not (confirmed or unavailable) else ()
    name_match = THEIR_NAME.search(text)
    name = name_match.group(1) if name_match and name_match.group(1).split()[0].lower() not in NOT_A_NAME else None
    phone_match = DIGITS.search(clean)
    reason_match = REASON.search(clean)
    return Heard(
        text=clean,
        question=question,
        asks=asks,
        offers=offers,
        slots=slots,
        confirmed=confirmed,
        unavailable=unavailable,
        declined=bool(DECLINE.search(clean)) or unavailable,
        agreed=bool(AGREE.search(clean)),
        goodbye=bool(GOODBYE.search(clean)),
        stop=bool(STOP.search(clean)),
        hold=bool(HOLD.search(clean)) and not question,
        later=bool(LATER.search(clean)),
        repeat=bool(REPEAT.search(clean)),
        backchannel=bool(BACKCHANNEL.search(clean)),
        sales=bool(SALES.search(clean)),
        message=bool(MESSAGE.search(clean)),
        their_name=name,
        phone=phone_match.group(0).strip(" ,.") if phone_match else None,
        reason=clean[reason_match.start() :].strip() if reason_match else None,
    )
