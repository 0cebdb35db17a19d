"""A persona's state machine on plain text: what it says next, given what the agent just said.

Kept free of audio and clocks so it is tested with fake transcripts; the emulator's listening far end
feeds it the agent's transcribed words. One instance per call, owned by the far end's script thread
(read by the scorer only after that thread has finished).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cellcall.emulator.listening import Reaction
from cellcall.eval.persona import Persona, State


@dataclass(frozen=True)
class Heard:
    """One agent turn as the persona understood it."""

    state: str
    text: str
    matched: str | None  # the state it moved to, None when nothing matched
    spoken_over: bool = False


@dataclass
class PersonaScript:
    """Implements `ListeningScript` for a persona file's states."""

    persona: Persona
    state: str = ""
    values: dict[str, str] = field(default_factory=dict)  # named groups captured from the agent's words
    visits: list[str] = field(default_factory=list)
    heard: list[Heard] = field(default_factory=list)
    gave_up: bool = False
    ended: bool = False
    interrupts: int = 0
    _misses: int = 0
    _interrupted: bool = False

    def start(self) -> Reaction:
        """Enter the start state (said on answer, or after the agent's first words)."""
        return self._enter(self.persona.start)

    @property
    def current(self) -> State:
        return self.persona.states[self.state]

    def hear(self, text: str, spoken_over: bool = False) -> Reaction:
        """The agent said `text` ("" = it stayed silent); `spoken_over` = the persona already talked over it."""
        if self.ended:
            return Reaction(None)
        state = self.current
        for transition in state.on:
            found = transition.pattern.search(text)
            if found:
                self.values.update({k: v.strip() for k, v in found.groupdict().items() if v})
                self.heard.append(Heard(state.name, text, transition.goto, spoken_over))
                return self._enter(transition.goto)
        self.heard.append(Heard(state.name, text, None, spoken_over))
        if spoken_over:
            return Reaction(None)  # the interruption was the answer; wait for what the agent says next
        self._misses += 1
        if self._misses > state.retries:
            self.gave_up = self.ended = True
            return Reaction(self._fill(state.give_up), hangup=True)
        return Reaction(self._fill(state.reask or state.say))

    def interrupt_after_ms(self) -> int | None:
        """How far into the agent's speech to talk over it, while this state visit has not done so yet."""
        if not self.state or self.ended or self._interrupted:  # not started (listening first), or done
            return None
        return self.current.interrupt_ms

    def interrupt(self) -> Reaction:
        """Talk over the agent now (the impatient persona), once per state visit."""
        self._interrupted = True
        self.interrupts += 1
        state = self.current
        return Reaction(self._fill(state.interrupt or state.reask or state.say))

    def _enter(self, name: str) -> Reaction:
        self.state = name
        self.visits.append(name)
        self._misses, self._interrupted = 0, False
        state = self.current
        self.ended = state.hangup
        return Reaction(self._fill(state.say), hangup=state.hangup)

    def _fill(self, text: str) -> str:
        return text.format_map(_Values(self.values)) if "{" in text else text


class _Values(dict[str, str]):
    """Captured values for a line; one not captured yet (its state was skipped) reads as "that"."""

    def __missing__(self, key: str) -> str:
        return "that"
