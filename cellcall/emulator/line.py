"""The one way to get an emulated line: the emulator on its two ptys plus the real SIM7600 driver on them.

`make_line` (kind "emulator"), `cellcall run`, `bench calls` and the tests all come through here, so the
driver is exercised exactly as on the hardware. Closing the line stops the emulator; the emulator is
handed back for inbound calls and the far end's own metrics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from cellcall.config import Settings
from cellcall.emulator.farend import FarEnd, FarEndFactory
from cellcall.emulator.modem import Faults, ModemEmulator
from cellcall.emulator.scenario import Scenario, ScenarioError, load_scenario
from cellcall.emulator.sounds import RENDER_RATE, Render
from cellcall.line import Line, LineError
from cellcall.line.sim7600 import Sim7600Line, modem_options

if TYPE_CHECKING:
    from cellcall.engines.cache import Engines


def far_end_render(engines: Engines) -> Render:
    """The far end speaks with the already-loaded agent TTS (text -> 8 kHz PCM), so models load once."""
    from cellcall.voice.audio import resample

    def render(text: str) -> bytes:
        tts = engines.tts()
        return resample(b"".join(tts.synthesize(text)), tts.sample_rate, RENDER_RATE)

    return render


def start_emulated_line(
    settings: Settings,
    scenario: str | Scenario | None = None,
    faults: Faults | None = None,
    engines: Engines | None = None,
    farend: FarEndFactory = FarEnd,
) -> tuple[Sim7600Line, ModemEmulator]:
    """Start the emulator with a scenario (built-in name, file, or one already built) and a driver on
    its ports (not opened); `farend` builds the far end of each call (e.g. one that listens)."""
    try:
        loaded = scenario if isinstance(scenario, Scenario) else load_scenario(scenario or settings.line.scenario)
    except (ScenarioError, OSError) as exc:
        raise LineError(f"emulator scenario: {exc}") from exc
    render = far_end_render(engines) if engines is not None else None
    emulator = ModemEmulator(scenario=loaded, faults=faults, render=render, farend=farend)
    emulator.start()
    line = Sim7600Line(emulator.at_port, emulator.audio_port, modem_options(settings), on_close=emulator.stop)
    return line, emulator


@contextlib.contextmanager
def emulated_line(
    settings: Settings,
    scenario: str | Scenario | None = None,
    engines: Engines | None = None,
    faults: Faults | None = None,
    farend: FarEndFactory = FarEnd,
) -> Iterator[tuple[Sim7600Line, ModemEmulator]]:
    """`start_emulated_line`, opened, and closed (emulator stopped) on the way out."""
    line, emulator = start_emulated_line(settings, scenario, faults, engines, farend)
    try:
        line.open()
        yield line, emulator
    finally:
        line.close()
        emulator.stop()


FAR_END_LINES = ("emulator", "sip")  # what `bench calls --line` and `eval --line` accept


def far_end_line(kind: str) -> Callable[..., contextlib.AbstractContextManager[tuple[Line, Any]]]:
    """How calls reach a scenario's far end: the emulated modem, or SIP on loopback (emulator/sip.py).

    Both take (settings, scenario, engines, farend=...) and yield (line, far end's host) whose
    `metrics` and `done` are the emulator's; baresip loads only for "sip"."""
    if kind == "emulator":
        return emulated_line
    if kind == "sip":
        from cellcall.emulator.sip import sip_loopback_line

        return sip_loopback_line
    raise LineError(f"--line must be one of {', '.join(FAR_END_LINES)} for far-end scenarios, got {kind!r}")
