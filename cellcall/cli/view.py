"""The live terminal view of a call (rich): state, the transcript as it grows, latency per turn.

It is a CallObserver: the call thread hands it events, and rich's own refresh thread draws it, so
drawing never slows the voice loop. The caller's words are shown as plain text (rich markup in a
transcript is never interpreted).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from cellcall.observe import CallObserver
from cellcall.record import Speaker, Turn, TurnLatency

SHOWN_TURNS = 12
SPEAKER_STYLE = {Speaker.AGENT: "bold cyan", Speaker.CALLER: "bold green", Speaker.SYSTEM: "dim"}


class LiveView(CallObserver):
    """Draws the call while it runs; use as a context manager around place_call."""

    def __init__(self, title: str, console: Console | None = None) -> None:
        self.title = title
        self.console = console or Console()
        self.state = "starting"
        self.folder: Path | None = None
        self.turns: list[Turn] = []
        self.latencies: list[TurnLatency] = []
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._live = Live(console=self.console, get_renderable=self.render, refresh_per_second=8, transient=False)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None) -> None:
        self._live.__exit__(kind, value, trace)

    def on_outbox(self, folder: Path) -> None:
        self.folder = folder

    def on_state(self, state: str) -> None:
        self.state = state

    def on_turn(self, turn: Turn) -> None:
        with self._lock:
            self.turns.append(turn)

    def on_latency(self, latency: TurnLatency) -> None:
        with self._lock:
            self.latencies.append(latency)

    def render(self) -> Group:
        with self._lock:
            turns, latencies = list(self.turns[-SHOWN_TURNS:]), list(self.latencies)
        header = Text.assemble(
            (self.title, "bold"), "  ", (f"[{self.state}]", "yellow"), f"  {time.monotonic() - self.started:5.1f} s"
        )
        return Group(header, _transcript(turns), _latency_table(latencies))


def _transcript(turns: list[Turn]) -> Panel:
    lines = Text()
    for turn in turns:
        lines.append(f"{turn.at_s:6.1f}  ", style="dim")
        lines.append(f"{turn.speaker.value:>6}: ", style=SPEAKER_STYLE[turn.speaker])
        if turn.barged_in and turn.spoken_text is not None:
            lines.append(turn.spoken_text)
            lines.append(" [cut]", style="red")
        else:
            lines.append(turn.text)
        lines.append("\n")
    return Panel(lines or Text("(waiting for the first words)", style="dim"), title="transcript")


def _latency_table(latencies: list[TurnLatency]) -> Table:
    table = Table(title="latency per reply (ms from the end of caller speech)", title_justify="left")
    for name in ("turn", "endpoint", "stt", "llm 1st token", "1st sentence", "tts 1st audio", "on the line", "barge-in stop"):
        table.add_column(name, justify="right")
    for lat in latencies[-SHOWN_TURNS:]:
        values = (
            lat.endpoint_ms,
            lat.stt_ms,
            lat.llm_first_token_ms,
            lat.llm_first_sentence_ms,
            lat.tts_first_audio_ms,
            lat.first_audio_ms,
            lat.barge_in_stop_ms,
        )
        table.add_row(str(lat.turn), *("-" if v is None else f"{v:.0f}" for v in values))
    return table
