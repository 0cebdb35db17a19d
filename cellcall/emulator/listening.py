"""A far end that listens: it transcribes what the agent says on the uplink and answers by a script.

The scripted `FarEnd` plays lines on timing; this one waits for each agent utterance to end (the
scenario's `quiet_ms` of uplink silence), transcribes it, and asks its `ListeningScript` what to say
next, so a persona can insist on a name, re-ask, give up, or talk over a long-winded agent. Audio,
pacing, noise and the voice-to-voice figures are the base class's, on the modem's sample clock.

Threads: the modem's audio thread feeds frames as in `FarEnd`; this class's script thread owns the
script object, `_taken` (how many utterances it has heard) and `_heard_upto` (the uplink frame its
last transcription reached); both threads read the tracker under `_cond`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cellcall.emulator.farend import FRAME_S, FarEnd
from cellcall.emulator.scenario import Scenario, Sound
from cellcall.emulator.sounds import Render

SILENT = ""  # what the script hears when the agent says nothing for the scenario's max_wait_s
HANGUP_PAUSE_S = 0.5  # after its last line, the far end hangs up this much later (as a person does)
PAD_FRAMES = 15  # 300 ms of the quiet around an utterance go to the transcriber: Whisper drops soft word
# ends ("Taylor" -> "Tay") from audio cut at the last loud frame
MIN_WORD_FRAMES = 10  # utterances with less speech than 200 ms (a click, the tail of a cut-off reply) are
# not words: Whisper makes "I" or "you" of them, and a re-ask in answer to a click is not what a person does

Transcribe = Callable[[bytes, int], str]  # (s16le PCM, its sample rate) -> text


@dataclass(frozen=True)
class Reaction:
    """What the far end does now: say `say` (None: nothing), then hang up when `hangup`."""

    say: str | None
    hangup: bool = False


class ListeningScript(Protocol):
    """The persona's mind, on plain text (see cellcall.eval.script.PersonaScript)."""

    def start(self) -> Reaction: ...

    def hear(self, text: str, spoken_over: bool = False) -> Reaction: ...

    def interrupt_after_ms(self) -> int | None: ...

    def interrupt(self) -> Reaction: ...


class ListeningFarEnd(FarEnd):
    """One call's far end driven by what the agent says (build it with `listening_far_end`)."""

    def __init__(
        self,
        scenario: Scenario,
        render: Render | None,
        hangup: Callable[[], None],
        press: Callable[[str], None],
        *,
        script: ListeningScript,
        transcribe: Transcribe,
        prepared: list[str],
        speaks_first: bool,
        first_pause_s: float = 1.0,
    ) -> None:
        self.script = script
        self._transcribe = transcribe
        self._prepared = [Sound(say=text) for text in prepared]
        self._speaks_first = speaks_first
        self._first_pause_s = first_pause_s  # audio up -> first words, when it speaks first
        self._taken = 0  # tracker utterances already heard by the script
        self._heard_upto = 0  # uplink frames already transcribed (padding never hears a word twice)
        self._lines = 0
        self.finished = threading.Event()  # the script thread is done (the script may be read)
        super().__init__(scenario, render, hangup, press)

    def _prepared_sounds(self) -> list[Sound]:
        return self._prepared

    def wait_finished(self, timeout: float) -> bool:
        """Wait for the script thread (a transcription may still be running when the call ends)."""
        return self.finished.wait(timeout)

    # ---- the script thread ------------------------------------------------------------------------

    def _run(self) -> None:
        self._start_hangup_timer()
        try:
            if self._speaks_first:
                if self._wait_for_audio() and not self._stop.wait(self._first_pause_s):
                    self._converse()
            elif self._listen()[0] != "stopped":
                self._converse()
        except Exception as exc:  # noqa: BLE001 - a script or STT failure ends the call, and says why
            self.metrics.errors.append(f"listening far end failed: {type(exc).__name__}: {exc}")
            self._far_hangup()
        finally:
            self.finished.set()

    def _wait_for_audio(self) -> bool:
        """Wait until the host routes audio (what is said before that is lost); False if the call ended."""
        with self._cond:
            while self._t0 is None and not self._stop.is_set():
                self._cond.wait(0.05)
            return not self._stop.is_set()

    def _converse(self) -> None:
        reaction = self.script.start()
        while self._act(reaction, over=False):
            kind, text = self._listen()
            spoken_over = kind == "interrupt"
            if spoken_over:  # talk over the agent, then hear out what it was saying (once per visit)
                if not self._act(self.script.interrupt(), over=True):
                    return
                kind, text = self._listen()
            if kind == "stopped":
                return
            reaction = self.script.hear(text, spoken_over=spoken_over)

    def _act(self, reaction: Reaction, over: bool) -> bool:
        """Say the reaction's line (over the agent when `over`); False once the call is over."""
        if reaction.say:
            self._speak(Sound(say=reaction.say), self._lines, cut=False, barge=over)
            self._lines += 1
        if reaction.hangup:
            if not self._stop.wait(HANGUP_PAUSE_S):
                self._far_hangup()
            return False
        return not self._stop.is_set()

    def _listen(self) -> tuple[str, str]:
        """("words", text) once the agent has spoken and gone quiet (SILENT after max_wait_s of nothing),
        ("interrupt", "") when the script wants to talk over it now, ("stopped", "") when the call ended.

        An agent that starts again while its last words are being transcribed is heard out first:
        the texts are joined, as a person waits for someone who has not finished.
        """
        heard: list[str] = []
        while True:
            event = self._wait_for_event(allow_interrupt=not heard)
            if event in ("stopped", "interrupt"):
                return event, ""
            if event == "silent":
                return "words", " ".join(heard) or SILENT
            taken = self._take_utterances()
            text = self._transcribe(*taken).strip() if taken else ""
            if text:
                heard.append(text)
            with self._cond:
                resumed = self._tracker.speaking() or len(self._tracker.utterances) > self._taken
            if not resumed and heard:
                return "words", " ".join(heard)

    def _wait_for_event(self, allow_interrupt: bool) -> str:
        interrupt_ms = self.script.interrupt_after_ms() if allow_interrupt else None
        deadline = max(time.monotonic(), self._spoke_until) + self.scenario.max_wait_s
        with self._cond:
            while True:
                tracker, now = self._tracker, time.monotonic()
                if self._stop.is_set():
                    return "stopped"
                if len(tracker.utterances) > self._taken and not tracker.speaking():
                    return "utterance"
                if interrupt_ms is not None and tracker.current is not None:
                    if now - tracker.current.start >= interrupt_ms / 1000.0:
                        return "interrupt"
                if not tracker.speaking() and now >= deadline:
                    return "silent"
                self._cond.wait(0.05)

    def _take_utterances(self) -> tuple[bytes, int] | None:
        """The audio of every utterance not heard yet, from just before the first to just after the last
        (the pauses between them included, as a listener hears them), and its sample rate; None when
        they hold too little speech to be words."""
        with self._cond:
            segments = self._tracker.utterances[self._taken :]
            self._taken += len(segments)
            if sum(segment.loud_frames for segment in segments) < MIN_WORD_FRAMES:
                return None
            first = max(self._heard_upto, segments[0].first_frame - PAD_FRAMES)
            self._heard_upto = segments[-1].last_frame + 1 + PAD_FRAMES
            size = int(self._rate * FRAME_S) * 2
            return bytes(self.metrics.uplink[first * size : self._heard_upto * size]), self._rate


def listening_far_end(
    script_for_call: Callable[[], ListeningScript],
    transcribe: Transcribe,
    prepared: list[str],
    speaks_first: bool,
    first_pause_s: float = 1.0,
) -> tuple[Callable[..., ListeningFarEnd], list[ListeningFarEnd]]:
    """A far-end factory for `ModemEmulator(farend=...)`, and the list each far end it builds joins
    (so whoever runs the call can read the script once the call is over)."""
    built: list[ListeningFarEnd] = []

    def build(
        scenario: Scenario, render: Render | None, hangup: Callable[[], None], press: Callable[[str], None]
    ) -> ListeningFarEnd:
        farend = ListeningFarEnd(
            scenario,
            render,
            hangup,
            press,
            script=script_for_call(),
            transcribe=transcribe,
            prepared=prepared,
            speaks_first=speaks_first,
            first_pause_s=first_pause_s,
        )
        built.append(farend)
        return farend

    return build, built
