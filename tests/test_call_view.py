"""The live view draws state, transcript and latency, and never interprets the caller's words as markup."""

from __future__ import annotations

import io

from rich.console import Console

from cellcall.cli.view import LiveView
from cellcall.record import Speaker, Turn, TurnLatency


def test_live_view_shows_turns_cuts_and_latency_with_caller_text_verbatim() -> None:
    out = io.StringIO()
    console = Console(file=out, width=120, force_terminal=False)
    view = LiveView("dentist -> +14155550132", console)
    view.on_state("speaking")
    view.on_turn(Turn(1, Speaker.CALLER, "[bold]Bright[/bold] Smile Dental", 0.6))
    view.on_turn(Turn(2, Speaker.AGENT, "Hi, this is Alex calling for Sam.", 4.1, barged_in=True, spoken_text="Hi, this is"))
    view.on_latency(TurnLatency(turn=1, endpoint_ms=500.0, stt_ms=320.0, first_audio_ms=812.0, barge_in_stop_ms=90.0))
    console.print(view.render())
    text = out.getvalue()
    assert "[speaking]" in text and "[bold]Bright[/bold] Smile Dental" in text
    assert "Hi, this is [cut]" in text and "calling for Sam" not in text
    assert "812" in text and "320" in text and "90" in text
