"""The agent for one call, as the voice loop uses it.

Thread ownership: an `Agent` belongs to the voice loop's thread, which is the only caller of `observe`.
`view()` (also on the loop thread, when a reply starts) hands the reply thread an immutable `AgentView`;
`AgentView.turn` runs on the reply thread and reads only that frozen view.

Styles (config `agent.style`): "scripted" speaks the planner's own wording and asks the model only for
moves the planner cannot word (a question the goal's facts do not answer); "guided" lets the model phrase
every move from the planner's step and falls back to the planner's wording when the guard refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellcall.agent.brief import Brief, brief_of
from cellcall.agent.dialogue import Dialogue, Snapshot
from cellcall.agent.guard import clean, refusal
from cellcall.agent.planner import Move, plan
from cellcall.agent.prompt import CHARS_PER_TOKEN, compacted, examples, system_prompt, user_message
from cellcall.engines import ChatMessage
from cellcall.goal import Goal

STYLES = ("scripted", "guided")


@dataclass(frozen=True)
class AgentTurn:
    """The reply to one turn of the other party: the move, and the model's prompt when it is asked."""

    move: Move
    messages: list[ChatMessage] | None  # None: speak `move.say` without the model
    message: str  # the user message recorded in the history
    view: AgentView
    their_words: str = ""  # what the other party just said (untrusted)

    def accept(self, sentence: str) -> str | None:
        """The model's sentence as it may be spoken, or None when the guard refuses it."""
        text = clean(sentence, self.view.brief.name)
        why = refusal(
            text,
            state=self.view.state,
            known=self.view.known_text(self.message),
            heard=(*(h.text for h in self.view.state.heard), self.their_words),
            must_mention=self.move.must_mention,
            closing=self.move.kind.startswith("close"),
            outbound=self.view.brief.direction == "outbound",
        )
        return None if why else text

    def plain(self) -> str:
        """The planner's own wording, never a verbatim repeat of something already said."""
        say = self.move.say
        for lead in ("", "Sorry, once more:", "Again,", "As I said,", "To repeat,"):
            candidate = f"{lead} {say}".strip()
            if not say or not self.view.state.said_before(candidate):
                return candidate
        return f"{say} Thank you."


@dataclass(frozen=True)
class AgentView:
    brief: Brief
    style: str
    state: Snapshot
    system: ChatMessage
    history: tuple[ChatMessage, ...]

    def turn(self, their_words: str) -> AgentTurn:
        move = plan(self.brief, self.state, their_words)
        message = user_message(their_words, move.hint or move.say or "Wait for them to go on.")
        asks_model = bool(move.hint) and (self.style == "guided" or move.kind == "free")
        messages = [self.system, *examples(self.brief), *self.history, ChatMessage("user", message)] if asks_model else None
        return AgentTurn(move, messages, message, self, their_words)

    def known_text(self, message: str) -> str:
        """Everything the agent may repeat: the goal's text, what the other party said, the step."""
        heard = " ".join(h.text for h in self.state.heard)
        return " ".join((self.brief.persona, self.brief.objective, *self.brief.sayable_facts(), heard, message))


class Agent:
    """Brief, dialogue state and model history of one call (loop thread only)."""

    def __init__(self, goal: Goal, style: str = "scripted", context_tokens: int = 2048) -> None:
        if style not in STYLES:
            raise ValueError(f"unknown agent style {style!r}: use one of {', '.join(STYLES)}")
        self.brief = brief_of(goal)
        self.style = style
        self.system = ChatMessage("system", system_prompt(self.brief))
        self.dialogue = Dialogue()
        self._history: tuple[ChatMessage, ...] = ()
        self._budget_chars = int(context_tokens * CHARS_PER_TOKEN * 0.5)

    @property
    def opening(self) -> str:
        return self.brief.opening

    def primer(self) -> list[ChatMessage]:
        """The prompt prefix the next request starts with (the history only grows): warmed while the phone
        rings, and again while the caller speaks."""
        return [self.system, *examples(self.brief), *self._history]

    def view(self) -> AgentView:
        return AgentView(self.brief, self.style, self.dialogue.snapshot(), self.system, self._history)

    def observe(
        self, their_words: str | None, spoken: str | None, turn: AgentTurn | None, kind: str | None = None, unsaid: str = ""
    ) -> None:
        """One exchange as it happened (a barged-in reply only up to the cut; `unsaid` is the rest)."""
        move = turn.move if turn is not None else None
        accepted = move.accepted if move and spoken else None
        self.dialogue.observe(their_words, spoken, move.kind if move else kind, accepted, unsaid)
        if their_words or spoken:
            message = turn.message if turn is not None else user_message(their_words or "", "Go on.")
            exchange = (ChatMessage("user", message), ChatMessage("assistant", spoken or "..."))
            self._history = compacted((*self._history, *exchange), self._budget_chars)
