"""The SIM7600 driver's timing knobs, and the ones `Settings` configures."""

from __future__ import annotations

from dataclasses import dataclass

from cellcall.config import Settings


@dataclass
class ModemOptions:
    """Timing knobs; defaults follow reference/modem.md."""

    command_timeout_s: float = 5.0
    answer_timeout_s: float = 45.0  # outbound: no BEGIN by then -> NO_ANSWER and hang up
    route_delay_s: float = 0.3  # after BEGIN, before AT+CPCMREG=1 (too early -> ERROR/freeze)
    route_attempts: int = 5
    rate_window_s: float = 0.25  # downlink measured this long to tell 8 from 16 kHz (they differ 2x)
    downlink_timeout_s: float = 2.0  # routed but no PCM by then -> reroute once, then ERROR
    reopen_timeout_s: float = 10.0
    reset_timeout_s: float = 30.0  # AT+CRESET: USB re-enumerates in 14-20 s on real hardware
    frame_queue: int = 100  # downlink frames held (2 s); the oldest is dropped beyond
    lead_ms: int = 60  # uplink bytes kept ahead of real time: absorbs scheduling hiccups, costs barge-in latency
    sms_timeout_s: float = 60.0


def modem_options(settings: Settings) -> ModemOptions:
    """The configured timing knobs; the rest keep the defaults above."""
    line = settings.line
    return ModemOptions(
        command_timeout_s=line.command_timeout_s,
        answer_timeout_s=line.answer_timeout_s,
        reset_timeout_s=line.reset_timeout_s,
    )
