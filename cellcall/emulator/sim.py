"""`cellcall sim`: the emulated modem on its own, so any program can be tried against it.

It prints the two port paths, plays the scenario when the program calls (or rings the program
with --ring), and prints what the far end measured when the call ends or on Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Iterable

from cellcall.emulator.farend import FarEndMetrics
from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import load_scenario

LINGER_S = 1.0  # after the call ends, keep the ports so the program can read the last URCs (NO CARRIER)


class SimError(ValueError):
    """A `cellcall sim` option cannot be used; the message says which and why."""


def parse_faults(items: Iterable[str]) -> Faults:
    """Faults from KEY=VALUE strings (`--fault vanish_after_s=5 --fault doubled_crlf`)."""
    fields = {f.name: f for f in dataclasses.fields(Faults)}
    values: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in fields:
            raise SimError(f"unknown fault {key!r}: choose from {', '.join(fields)}")
        if isinstance(getattr(Faults(), key), bool):
            if sep and raw.strip().lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise SimError(f"fault {key}: expected true or false, got {raw!r}")
            values[key] = not sep or raw.strip().lower() in ("1", "true", "yes")
            continue
        try:
            number = float(raw)
        except ValueError:
            raise SimError(f"fault {key}: expected a number of seconds, got {raw!r}") from None
        if number < 0:
            raise SimError(f"fault {key}: must not be negative")
        values[key] = number
    return Faults(**values)  # type: ignore[arg-type]


def format_metrics(metrics: FarEndMetrics) -> str:
    """What the far end measured, as a short markdown summary."""
    lines = [f"far end: {metrics.scenario}, ended by {metrics.ended_by or 'nobody yet'}"]
    if metrics.answered_at is None:
        return lines[0] + " (never answered)"
    for turn in metrics.turns:
        v2v = f"{turn.voice_to_voice_ms:.0f} ms" if turn.voice_to_voice_ms is not None else "no reply"
        extra = f", barge-in stop {turn.barge_in_stop_ms:.0f} ms" if turn.barge_in_stop_ms is not None else ""
        cut = " (cut)" if turn.cut else ""
        lines.append(f"- turn {turn.index}: {turn.text!r}{cut} -> voice-to-voice {v2v}{extra}")
    v2v_all = metrics.voice_to_voice_ms
    if v2v_all:
        lines.append(f"voice-to-voice median {statistics.median(v2v_all):.0f} ms over {len(v2v_all)} turns")
    lines.append(f"agent utterances heard: {metrics.heard_agent_utterances}, uplink underruns: {metrics.uplink_underruns}")
    if metrics.dtmf_heard:
        lines.append(f"DTMF heard: {metrics.dtmf_heard}")
    lines.extend(f"error: {error}" for error in metrics.errors)
    return "\n".join(lines)


def run_sim(scenario: str, ring: str | None, faults: Iterable[str], say: Callable[[str], None]) -> FarEndMetrics:
    """Run the emulator until the scenario's call ends or Ctrl-C; returns the far end's measurements."""
    emulator = ModemEmulator(load_scenario(scenario), parse_faults(faults))
    with emulator:
        say(f"AT port:    {emulator.at_port}")
        say(f"audio port: {emulator.audio_port}")
        if ring:
            emulator.incoming_call(ring)
            say(f"ringing the host from {ring}")
        else:
            say(f"waiting for a call (scenario {emulator.scenario.name}); Ctrl-C to stop")
        try:
            while not emulator.done.wait(0.2):
                pass
            time.sleep(LINGER_S)
        except KeyboardInterrupt:
            say("stopped")
    return emulator.metrics
