"""The dialogue state of one call: what the other party asked and offered, what was agreed.

Owned by the voice loop's thread: `observe` is called once per finished exchange (from the loop's
`_close_reply`). Reply threads never see this object, only a frozen `snapshot()` taken on the loop thread
when the reply starts, so there is one writer and no locks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from cellcall.agent.understand import Heard, hear
from cellcall.agent.when import Slot


def normalised(text: str) -> str:
    """Lower case, words only: two utterances that sound the same compare equal."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


@dataclass(frozen=True)
class Quote:
    turn: int  # index of the other party's turn (0-based) in this call
    text: str


@dataclass(frozen=True)
class Snapshot:
    """The state as a reply thread sees it (immutable)."""

    heard: tuple[Heard, ...] = ()
    said: tuple[str, ...] = ()  # the agent's utterances as heard by the other party
    moves: tuple[str, ...] = ()  # the move kinds used so far
    said_by: tuple[str, ...] = ()  # the move kind behind each entry of `said`
    offers: tuple[tuple[int, Slot], ...] = ()
    accepted: Slot | None = None
    confirmed: Quote | None = None
    unavailable: Quote | None = None
    alternatives_asked: int = 0
    purpose_stated: bool = False
    closing: bool = False
    unsaid: str = ""  # the rest of the agent's last utterance, cut off by the other party
    caller_name: Quote | None = None
    caller_phone: Quote | None = None
    caller_reason: Quote | None = None

    def said_before(self, text: str) -> bool:
        key = normalised(text)
        return bool(key) and any(normalised(s) == key for s in self.said)

    def times_used(self, move: str) -> int:
        return self.moves.count(move)


@dataclass
class Dialogue:
    """Mutable state; the loop thread is its only writer."""

    state: Snapshot = field(default_factory=Snapshot)

    def snapshot(self) -> Snapshot:
        return self.state

    def observe_agent_first(self, text: str, move: str = "opening") -> None:
        """An utterance the agent made before hearing anything (the opening when we speak first)."""
        if text:
            s = self.state
            self.state = replace(s, said=(*s.said, text), moves=(*s.moves, move), said_by=(*s.said_by, move))

    def observe(
        self, other: str | None, agent: str | None, move: str | None, accepted: Slot | None = None, unsaid: str = ""
    ) -> None:
        """One exchange as it really happened: their words (None if none), what the agent got out, and
        `unsaid`, what a cut-off reply did not get to say."""
        s = self.state
        heard, offers = s.heard, s.offers
        confirmed, unavailable = s.confirmed, s.unavailable
        name, phone, reason = s.caller_name, s.caller_phone, s.caller_reason
        if other:
            turn = len(heard)
            h = hear(other)
            heard = (*heard, h)
            offers = (*offers, *((turn, slot) for slot in h.offers))
            if h.confirmed and confirmed is None:
                confirmed = Quote(turn, h.text)
            if h.unavailable:
                unavailable = Quote(turn, h.text)
            name = name or (Quote(turn, h.their_name) if h.their_name else None)
            phone = phone or (Quote(turn, h.phone) if h.phone else None)
            reason = reason or (Quote(turn, h.reason) if h.reason else None)
        said = (*s.said, agent) if agent else s.said
        said_by = (*s.said_by, move or "") if agent else s.said_by
        moves = (*s.moves, move) if move else s.moves
        self.state = replace(
            s,
            heard=heard,
            said=said,
            said_by=said_by,
            moves=moves,
            offers=offers,
            accepted=accepted or s.accepted,
            confirmed=confirmed,
            unavailable=unavailable,
            alternatives_asked=s.alternatives_asked + (move == "ask-alternative"),
            purpose_stated=s.purpose_stated or move in ("purpose", "opening-purpose"),
            closing=s.closing or (move or "").startswith("close"),
            caller_name=name,
            caller_phone=phone,
            caller_reason=reason,
            unsaid=unsaid,
        )
