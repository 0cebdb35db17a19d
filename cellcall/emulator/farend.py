"""The emulated far end: plays a scenario into the downlink, listens to the uplink, measures the agent.

Everything is timed by the modem's own sample clock (a downlink sample's time is when the modem wrote
it to the audio port, an uplink sample's time is when the modem played it to the network), so the
figures are what the person on the other end would experience, independent of the host's clocks.
The script runs in its own thread; the modem's audio thread only calls the cheap `downlink` and
`uplink` methods, so nothing the far end does can stall the modem's pacing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from cellcall.emulator.scenario import Scenario, ScenarioLine, Sound
from cellcall.emulator.sounds import RENDER_RATE, Render, SoundBank
from cellcall.voice.audio import resample

SPEECH_RMS = 300.0  # int16 RMS above which an uplink frame counts as agent speech (about -40 dBFS)
FRAME_S = 0.020

FarEndFactory = Callable[..., "FarEnd"]  # (scenario, render, hangup=, press=) -> FarEnd or a subclass


@dataclass
class Segment:
    """One agent utterance found on the uplink by energy, in modem-clock seconds."""

    start: float
    end: float  # end of the last loud frame
    loud_frames: int
    first_frame: int  # index into the uplink frames of the call
    last_frame: int
    gaps: int = 0  # underruns inside the utterance (the modem had nothing to play)


class SpeechTracker:
    """Splits the uplink into agent utterances (energy + hangover) and counts underruns inside them.

    Pure and clock-free: it is fed frames with their times, so a known pattern gives exact results.
    """

    def __init__(self, quiet_s: float = 0.6, threshold: float = SPEECH_RMS, min_loud_frames: int = 2) -> None:
        self.quiet_s = quiet_s
        self.threshold = threshold
        self.min_loud_frames = min_loud_frames
        self.utterances: list[Segment] = []
        self.current: Segment | None = None
        self.frames = 0
        self.underruns = 0
        self._in_gap = False  # inside a run of frames with silence fill
        self._tentative = 0  # fill runs not yet followed by more speech (trailing fill is no gap)

    def feed(self, t: float, frame: bytes, short: bool) -> None:
        """One 20 ms uplink frame that the modem played at time `t`; `short` = partly filled with silence."""
        index = self.frames
        self.frames += 1
        loud = _rms(frame) >= self.threshold
        seg = self.current
        if seg is None:
            if loud:  # fill in the onset frame is the host starting to talk, not a gap
                self.current = Segment(t, t + FRAME_S, 1, index, index)
                self._in_gap, self._tentative = short, 0
            return
        # A fill run is a gap only once speech resumes after it; fill is appended at the end of a
        # modem tick, so a loud frame that starts a run may just be the utterance's last words.
        new_run = short and not self._in_gap
        self._tentative += new_run
        self._in_gap = short
        if loud:
            confirmed = self._tentative - new_run
            seg.gaps += confirmed
            self._tentative -= confirmed
            seg.end, seg.last_frame = t + FRAME_S, index
            seg.loud_frames += 1
            return
        if t + FRAME_S - seg.end >= self.quiet_s - 1e-6:  # frame times are sums of floats
            self._close()

    def flush(self) -> None:
        """Close the utterance in progress (the call ended)."""
        if self.current is not None:
            self._close()

    def speaking(self) -> bool:
        """True while an utterance is open (the agent spoke and has not yet been quiet long enough)."""
        return self.current is not None

    def _close(self) -> None:
        seg = self.current
        self.current = None
        if seg is not None and seg.loud_frames >= self.min_loud_frames:
            self.utterances.append(seg)
            self.underruns += seg.gaps


@dataclass
class FarEndTurn:
    """One line the far end spoke, and how the agent responded to it."""

    index: int
    text: str
    started_at: float
    ended_at: float
    cut: bool = False  # the far end hung up part-way through
    barge_in: bool = False  # spoken over the agent on purpose
    backchannel: bool = False  # ... as "mm-hm": the agent should go on (no barge-in stop is measured)
    agent_went_on_ms: float | None = None  # a backchannel: its end -> the agent's audio again (None: it never did)
    agent_reply_at: float | None = None
    voice_to_voice_ms: float | None = None  # end of this line -> first agent speech after it
    barge_in_stop_ms: float | None = None  # start of this (barge-in) line -> agent went quiet
    # A menu line (wait_dtmf) records one turn per play of its prompt, all with the line's index:
    play: int = 1  # which play of the line's sound this is (1 = the first)
    dtmf_prompt_end: float | None = None  # a menu prompt: when its sound ended (the key wait starts)
    dtmf_heard_at: float | None = None  # a menu prompt: when the last of its keys arrived (None: never)


@dataclass
class AgentUtterance:
    start: float
    end: float
    pcm: bytes  # the uplink audio of the utterance at `sample_rate`


@dataclass
class FarEndMetrics:
    """What the far end measured in one call (modem-clock seconds from time.monotonic).

    Recordings grow live; utterances, underruns and per-turn figures are final once the call has
    ended (the emulator's `done` is set).
    """

    scenario: str = ""
    sample_rate: int = 8000
    answered_at: float | None = None
    audio_at: float | None = None  # first sample of the audio route
    ended_at: float | None = None
    ended_by: str | None = None  # "far_end" | "host" | "lost" (ports vanished) | "missed" | "stopped" (emulator stopped)
    turns: list[FarEndTurn] = field(default_factory=list)
    utterances: list[Segment] = field(default_factory=list)
    uplink_underruns: int = 0
    dtmf_heard: str = ""  # keys the agent sent with AT+VTS
    errors: list[str] = field(default_factory=list)  # e.g. a line that could not be rendered
    downlink: bytearray = field(default_factory=bytearray)  # everything the modem wrote to the audio port
    uplink: bytearray = field(default_factory=bytearray)  # everything the modem played to the network

    @property
    def heard_agent_utterances(self) -> int:
        return len(self.utterances)

    @property
    def agent_utterances(self) -> list[AgentUtterance]:
        """The agent's uplink audio split into utterances (so tests can transcribe what it said)."""
        size = int(self.sample_rate * FRAME_S) * 2
        return [
            AgentUtterance(s.start, s.end, bytes(self.uplink[s.first_frame * size : (s.last_frame + 1) * size]))
            for s in self.utterances
        ]

    @property
    def voice_to_voice_ms(self) -> list[float]:
        return [t.voice_to_voice_ms for t in self.turns if t.voice_to_voice_ms is not None]


def score_turns(turns: list[FarEndTurn], utterances: list[Segment]) -> None:
    """Fill each turn's agent reply, voice-to-voice and barge-in stop time from the utterances heard."""
    for i, turn in enumerate(turns):
        next_start = turns[i + 1].started_at if i + 1 < len(turns) else float("inf")
        reply = next((u for u in utterances if turn.ended_at <= u.start < next_start), None)
        turn.agent_reply_at = reply.start if reply else None
        turn.voice_to_voice_ms = (reply.start - turn.ended_at) * 1000.0 if reply else None
        if turn.backchannel:
            went_on = next((u for u in utterances if u.end > turn.ended_at and u.start < next_start), None)
            turn.agent_went_on_ms = max(0.0, went_on.start - turn.ended_at) * 1000.0 if went_on else None
            turn.agent_reply_at = turn.voice_to_voice_ms = None  # going on is not a reply to it
        elif turn.barge_in:
            talking = next((u for u in utterances if u.start <= turn.started_at < u.end), None)
            turn.barge_in_stop_ms = (talking.end - turn.started_at) * 1000.0 if talking else None


def speech_rms(pcm: bytes, rate: int) -> float:
    """RMS of the 20 ms frames of `pcm` that are speech (louder than SPEECH_RMS): the level SNR refers to."""
    data = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    size = int(rate * FRAME_S)
    frames = data[: data.size - data.size % size].reshape(-1, size) if data.size >= size else data.reshape(1, -1)
    levels = np.sqrt(np.mean(frames * frames, axis=1))
    loud = levels[levels >= SPEECH_RMS]
    return float(np.sqrt(np.mean(loud * loud))) if loud.size else SPEECH_RMS


def _rms(pcm: bytes) -> float:
    data = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    return float(np.sqrt(np.mean(data * data))) if data.size else 0.0


class FarEnd:
    """One call's far end: runs the scenario script and measures the agent from the modem's clock."""

    def __init__(
        self,
        scenario: Scenario,
        render: Render | None,
        hangup: Callable[[], None],
        press: Callable[[str], None],
    ) -> None:
        self.scenario = scenario
        self.metrics = FarEndMetrics(scenario=scenario.name)
        self._hangup = hangup
        self._press = press
        self._bank = SoundBank(self._prepared_sounds(), render)
        self._tracker = SpeechTracker(quiet_s=scenario.quiet_ms / 1000.0)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Route state (touched by the modem's audio thread under _cond).
        self._rate = RENDER_RATE
        self._t0: float | None = None
        self._playing: tuple[bytes, float, int] | None = None  # (pcm, time of its first sample, its rate)
        self._spoke_until = 0.0
        self._key_times: list[float] = []  # under _cond: when each key of metrics.dtmf_heard arrived
        self._keys_at_play = 0  # keys heard when the last sound started playing (script thread)
        self._echo = bytearray()
        self._frame_buf = bytearray()
        self._frame_mask = bytearray()  # 1 per uplink byte that was silence fill
        self._up_samples = 0
        self._down_samples = 0
        self._echo_gain = 10 ** (scenario.echo.gain_db / 20) if scenario.echo else 0.0
        self._noise_rms = 0.0  # under _cond: set by the script thread when it first speaks, read by the audio thread
        self._noise_rng = np.random.default_rng(7)

    def _prepared_sounds(self) -> list[Sound]:
        """The sounds rendered ahead of time, while the phone rings."""
        return self.scenario.sounds()

    # ---- called by the modem -------------------------------------------------------------------

    def answered(self) -> None:
        """The call is up: start the script."""
        self.metrics.answered_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="farend-script", daemon=True)
        self._thread.start()

    def route(self, t0: float, rate: int) -> None:
        """Audio starts flowing at `t0` at `rate` (a new route restarts the sample counters)."""
        with self._cond:
            self._t0, self._rate = t0, rate
            self._up_samples = self._down_samples = 0
            self._frame_buf.clear()
            self._frame_mask.clear()
            delay = int(rate * self.scenario.echo.delay_ms / 1000) if self.scenario.echo else 0
            self._echo = bytearray(2 * delay)
            if self.metrics.audio_at is None:
                self.metrics.audio_at = t0
                self.metrics.sample_rate = rate

    def downlink(self, count: int) -> bytes:
        """The next `count` samples the far end sends (speech + echo + silence); never blocks long."""
        with self._cond:
            if self._t0 is None:
                return bytes(2 * count)
            first = self._down_samples
            self._down_samples += count
            out = np.zeros(count, dtype=np.float32)
            if self._playing is not None:
                # Speech runs on the far end's wall clock: what plays while audio is not routed is lost.
                pcm, at, rate = self._playing
                if rate != self._rate:  # the route came up at another rate than the sound was prepared for
                    pcm = resample(pcm, rate, self._rate)
                    self._playing = (pcm, at, self._rate)
                lo = first - round((at - self._t0) * self._rate)
                hi = lo + count
                speech = np.frombuffer(pcm, dtype="<i2")
                if hi > 0 and lo < speech.size:
                    a, b = max(lo, 0), min(hi, speech.size)
                    out[a - lo : b - lo] += speech[a:b]
                if hi >= speech.size:
                    self._playing = None
            if self._echo_gain:
                echo = np.frombuffer(bytes(self._echo[: 2 * count]), dtype="<i2")
                del self._echo[: 2 * count]
                out[: echo.size] += echo * self._echo_gain
            if self._noise_rms:
                out += self._noise_rng.normal(0.0, self._noise_rms, count).astype(np.float32)
            pcm = np.clip(out, -32768, 32767).astype("<i2").tobytes()
        self.metrics.downlink += pcm
        return pcm

    def uplink(self, pcm: bytes, short_from: int | None) -> None:
        """Samples the modem played to the network; bytes from `short_from` on were silence fill (underrun)."""
        with self._cond:
            if self._t0 is None:
                return
            self.metrics.uplink += pcm
            if self._echo_gain:
                self._echo += pcm
            fill_at = len(pcm) if short_from is None else short_from
            self._frame_buf += pcm
            self._frame_mask += bytes(fill_at) + b"\x01" * (len(pcm) - fill_at)
            size = int(self._rate * FRAME_S) * 2
            while len(self._frame_buf) >= size:
                frame, short = bytes(self._frame_buf[:size]), 1 in self._frame_mask[:size]
                del self._frame_buf[:size], self._frame_mask[:size]
                self._emit_frame(frame, short)

    def heard_dtmf(self, digits: str) -> None:
        """Keys the agent pressed (the modem's or the SIP peer's thread): wakes a menu waiting for them."""
        now = time.monotonic()
        with self._cond:
            self.metrics.dtmf_heard += digits
            self._key_times.extend(now for _ in digits)
            self._cond.notify_all()

    def ended(self, by: str) -> None:
        """The call is over (whoever ended it): stop the script and finish the measurements."""
        with self._cond:
            if self.metrics.ended_at is not None:
                return
            self.metrics.ended_at = time.monotonic()
            self.metrics.ended_by = by
            self._tracker.flush()
            self._stop.set()
            self._cond.notify_all()
        self._finish_metrics()

    # ---- internals --------------------------------------------------------------------------

    def _emit_frame(self, frame: bytes, short: bool) -> None:
        assert self._t0 is not None
        t = self._t0 + self._up_samples / self._rate
        self._up_samples += len(frame) // 2
        self._tracker.feed(t, frame, short)
        self._cond.notify_all()

    def _finish_metrics(self) -> None:
        with self._cond:
            self.metrics.utterances = list(self._tracker.utterances)
            self.metrics.uplink_underruns = self._tracker.underruns
            score_turns(self.metrics.turns, self.metrics.utterances)

    def _run(self) -> None:
        scenario = self.scenario
        self._start_hangup_timer()
        if scenario.greeting is not None:
            self._speak(scenario.greeting, -1, cut=False, barge=False)
        for index, line in enumerate(scenario.lines):
            if self._stop.is_set() or not self._take_turn(index, line):
                return
        if scenario.hangup_when_done and self._wait_for_agent() and not self._stop.wait(0.5):
            self._far_hangup()

    def _start_hangup_timer(self) -> None:
        if self.scenario.hangup_after_s is not None:
            timer = threading.Timer(self.scenario.hangup_after_s, self._far_hangup)
            timer.daemon = True
            timer.start()

    def _take_turn(self, index: int, line: ScenarioLine) -> bool:
        if line.wait_for_agent and not self._wait_for_agent():
            return False
        if line.barge_in_after_ms is not None and not self._wait_agent_talking(line.barge_in_after_ms / 1000):
            return False
        if line.pause_s and self._stop.wait(line.pause_s):
            return False
        if line.dtmf:
            for digit in line.dtmf:
                self._press(digit)
                if self._stop.wait(0.25):
                    return False
        if line.hangup:
            self._far_hangup()
            return False
        if line.wait_dtmf is not None:
            return self._menu(index, line)
        if line.sound is not None:
            turn = self._speak(line.sound, index, cut=line.hangup_mid_sentence, barge=line.barge_in_after_ms is not None)
            if turn is not None:
                turn.backchannel = line.backchannel
            if line.hangup_mid_sentence:
                self._far_hangup()
                return False
        return not self._stop.is_set()

    def _menu(self, index: int, line: ScenarioLine) -> bool:
        """A phone menu: play the prompt, wait `dtmf_wait_s` for its keys; `repeat` plays at most, then hang up.

        Each play counts the keys heard from its own start, so keys meant for an earlier line (or an
        earlier play) never pass a menu. Keys pressed while the prompt plays count, as real menus take
        early keys, but the prompt is not cut short: the wait then ends as soon as the prompt has ended.
        A wrong first key replays the prompt at once (a menu's "that is not an option"); keys after the
        right ones are ignored. True when the keys came, False when the call ended or we hung up.
        """
        assert line.sound is not None and line.wait_dtmf is not None
        for play in range(1, line.repeat + 1):
            barge = play == 1 and line.barge_in_after_ms is not None
            turn = self._speak(line.sound, index, cut=False, barge=barge, menu_play=play)
            if turn is None or self._stop.is_set():
                return False
            heard_at = self._await_keys(line.wait_dtmf, self._keys_at_play, line.dtmf_wait_s)
            if self._stop.is_set():
                return False
            if heard_at is not None:
                turn.dtmf_heard_at = heard_at
                return True
        self._far_hangup()
        return False

    def _await_keys(self, want: str, first: int, wait_s: float) -> float | None:
        """When the keys `want` arrived, counting keys from the `first`-th heard; None on a wrong key or none in time."""
        deadline = time.monotonic() + wait_s
        with self._cond:
            while not self._stop.is_set():
                pressed = self.metrics.dtmf_heard[first:]
                if pressed[: len(want)] == want:
                    return self._key_times[first + len(want) - 1]
                if not want.startswith(pressed):
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.1))
        return None

    def _speak(self, sound: Sound, index: int, cut: bool, barge: bool, menu_play: int | None = None) -> FarEndTurn | None:
        """Play a sound to the end (or half of it when `cut`), recording the turn on the modem clock.

        `menu_play` marks the turn as that play of a menu prompt (its end is where the key wait
        starts). The turn recorded is returned (None for the greeting, or when the call ended before
        the sound was ready); `_keys_at_play` is how many keys had been heard when it started playing.
        """
        pcm = self._bank.get(sound, self._rate, self._stop)
        if self._bank.error and self._bank.error not in self.metrics.errors:
            self.metrics.errors.append(self._bank.error)
        if pcm is None:
            return None
        if cut:
            pcm = pcm[: len(pcm) // 4 * 2]
        start = time.monotonic() + FRAME_S
        with self._cond:
            self._playing = (pcm, start, self._rate)
            self._keys_at_play = len(self.metrics.dtmf_heard)
            if self.scenario.noise is not None and not self._noise_rms and pcm:
                self._noise_rms = speech_rms(pcm, self._rate) / 10 ** (self.scenario.noise.snr_db / 20)
        end = start + len(pcm) / 2 / self._rate
        self._spoke_until = end
        turn = None
        if index >= 0:
            turn = FarEndTurn(index, sound.label, start, end, cut=cut, barge_in=barge)
            if menu_play is not None:
                turn.play, turn.dtmf_prompt_end = menu_play, end
            self.metrics.turns.append(turn)
        self._stop.wait(max(0.0, end - time.monotonic()))
        return turn

    def _wait_for_agent(self) -> bool:
        """Wait until the agent has spoken after our last line and gone quiet; False if the call ended."""
        since = self._spoke_until
        deadline = time.monotonic() + self.scenario.max_wait_s

        def replied() -> bool:
            done = any(u.end > since for u in self._tracker.utterances)
            return done and not self._tracker.speaking()

        with self._cond:
            while not self._stop.is_set() and not replied():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        return not self._stop.is_set()

    def _wait_agent_talking(self, after_s: float) -> bool:
        """Wait until the agent is speaking, then `after_s` more (to talk over it); False if the call ended."""
        deadline = time.monotonic() + self.scenario.max_wait_s
        with self._cond:
            while not self._stop.is_set() and not self._tracker.speaking() and time.monotonic() < deadline:
                self._cond.wait(0.1)
            started = self._tracker.current.start if self._tracker.current else time.monotonic()
        return not self._stop.wait(max(0.0, started + after_s - time.monotonic()))

    def _far_hangup(self) -> None:
        if not self._stop.is_set():
            self._hangup()
