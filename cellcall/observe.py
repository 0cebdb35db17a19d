"""Who watches a call: one observer shape for the loop's events, the outbox, the live view, the runner
and the pushes that follow a call (OpenClaw), so each event is forwarded once, through `Fanout`.

Threads: `on_state`, `on_turn` and `on_latency` come from the voice loop's thread while a call runs,
`on_outbox` and `on_finished` from the thread that placed the call. Observers must return quickly.
"""

from __future__ import annotations

from pathlib import Path

from cellcall.record import CallRecord, Turn, TurnLatency


class CallObserver:
    """Hooks for whoever watches a call; every method is optional."""

    def on_outbox(self, folder: Path) -> None:
        """The outbox folder exists (called before dialling, so a crash can still be reported)."""

    def on_state(self, state: str) -> None:
        """dialing, ringing, answered, listening, thinking, speaking, hanging-up, done."""

    def on_turn(self, turn: Turn) -> None: ...

    def on_latency(self, latency: TurnLatency) -> None: ...

    def on_finished(self, record: CallRecord, folder: Path) -> None:
        """The call's reports are final (runs before `on_state("done")`)."""


class Fanout(CallObserver):
    """Several observers as one, called in order."""

    def __init__(self, *observers: CallObserver) -> None:
        self.observers = observers

    def on_outbox(self, folder: Path) -> None:
        for observer in self.observers:
            observer.on_outbox(folder)

    def on_state(self, state: str) -> None:
        for observer in self.observers:
            observer.on_state(state)

    def on_turn(self, turn: Turn) -> None:
        for observer in self.observers:
            observer.on_turn(turn)

    def on_latency(self, latency: TurnLatency) -> None:
        for observer in self.observers:
            observer.on_latency(latency)

    def on_finished(self, record: CallRecord, folder: Path) -> None:
        for observer in self.observers:
            observer.on_finished(record, folder)
