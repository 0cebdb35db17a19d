"""The answering state of one call: who answered, and what the agent does about it.

Owned by the voice loop's thread: the loop feeds it every downlink frame (`feed`), the words of every
utterance a reply screened out (`heard`), and asks it for due actions once per frame (`due`). The reply
thread only gets `words_filter()`, a pure function of a snapshot, so no state crosses threads.

Modes: CONVERSATION (a person, or nothing heard yet), MAILBOX (a greeting: wait for the beep, then the
message), MENU (a phone menu: press the goal's key, wait for what comes next), HOLD (music or "please
hold": stay silent up to the goal's hold_max_s, speak when a person is back).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from cellcall.answering.menu import MenuRoute, Option, options
from cellcall.answering.tones import ToneMeter
from cellcall.answering.wording import Heard, heard
from cellcall.record import CallStatus
from cellcall.tags import Tag

NO_BEEP_WAIT_S = 2.5  # a greeting followed by this much quiet and no beep: speak anyway
BEEP_GAP_S = 0.15  # after the beep's end, before the message (a mailbox starts recording at the end)
MAILBOX_MAX_WAIT_S = 30.0  # a greeting that never ends: leave the message anyway
MENU_DECIDE_S = 1.5  # quiet after a menu's words: it has offered all it will, choose now
MENU_REPEATS = 3  # the same option heard this often with no way through: give up
MENU = "phone menu"


class Mode(str, enum.Enum):
    CONVERSATION = "conversation"
    MAILBOX = "mailbox"
    MENU = "menu"
    HOLD = "hold"


class Answerer(str, enum.Enum):
    """Who answered the call, as call.json's `answered_by` says it."""

    UNKNOWN = "unknown"
    HUMAN = "human"
    VOICEMAIL = "voicemail"
    IVR = "ivr"


@dataclass(frozen=True)
class AnsweringPlan:
    """What the goal says to do when a machine answers an outbound call."""

    voicemail_message: str | None = None  # None: hang up on a mailbox without a word
    keys: tuple[str, ...] = ()  # the goal's DTMF, one group per menu
    menu: str | None = None  # the menu option to take, by name
    objective: str = ""  # the route when the goal names none
    hold_max_s: float = 600.0


@dataclass(frozen=True)
class Act:
    """What the loop does now: press keys, prepare or say the mailbox message, or end the call."""

    kind: str  # "press" | "prepare" | "message" | "end" | "note"
    keys: str = ""
    reason: str = ""
    status: CallStatus = CallStatus.COMPLETED
    note: str = ""  # a line for the transcript ("phone menu", "on hold")


def words_filter(mode: Mode, settled: bool, music: bool) -> Callable[[str], set[str]]:
    """For the reply thread: {SCREENED} when the words are not a person's turn to answer.

    `settled`: a person has been talked to, so only hold counts (a person may say "leave a message")."""

    def screen(text: str) -> set[str]:
        if mode is Mode.MAILBOX or music:
            return {Tag.SCREENED}
        kind = heard(text)
        if settled:
            return {Tag.SCREENED} if kind is Heard.HOLD else set()
        return set() if kind is Heard.PERSON else {Tag.SCREENED}

    return screen


class AnswerScreen:
    def __init__(self, rate: int, *, leave_message: bool, route: MenuRoute, hold_max_s: float, t0: float) -> None:
        self.tones = ToneMeter(rate)
        self.leave_message = leave_message
        self.route = route
        self.hold_max_s = hold_max_s
        self.mode = Mode.CONVERSATION
        self.answered_by = Answerer.UNKNOWN
        self.settled = False  # a person has been answered
        self._last_voice = t0  # the far end's last speech frame
        self._mailbox_at: float | None = None  # when the greeting was recognised
        self._message_due = False  # prepared, not yet spoken
        self._hold_since: float | None = None
        self._menu_text = ""  # the menu's words since the last key (an option may span two utterances)
        self._menu_words_at: float | None = None  # the last menu words, while no key is chosen for them
        self._option_hearings: Counter[tuple[str, str]] = Counter()

    @classmethod
    def for_plan(cls, plan: AnsweringPlan, rate: int, t0: float) -> AnswerScreen:
        route = MenuRoute(list(plan.keys), plan.menu, plan.objective)
        return cls(rate, leave_message=bool(plan.voicemail_message), route=route, hold_max_s=plan.hold_max_s, t0=t0)

    # ---- what the loop tells it -----------------------------------------------------------------

    def feed(self, frame: bytes, now: float, voice: bool) -> Act | None:
        """Every downlink frame; `voice`: the VAD heard the far end speak in it."""
        self.tones.feed(frame, now)
        if voice:
            self._last_voice = now
        if self.mode in (Mode.CONVERSATION, Mode.MENU) and self.tones.music():
            return self._hold(now, "hold music")
        return None

    def words_filter(self) -> Callable[[str], set[str]]:
        return words_filter(self.mode, self.settled, self.tones.music())

    def heard(self, text: str, now: float) -> Act | None:
        """The words of an utterance that a reply screened out (not a person's turn)."""
        kind = heard(text)
        if kind is Heard.MAILBOX_FULL:
            self._answered(Answerer.VOICEMAIL)
            return Act("end", reason="voicemail: mailbox full", status=CallStatus.VOICEMAIL)
        if kind is Heard.UNAVAILABLE:
            return Act("end", reason="announcement: the number is not available", status=CallStatus.NO_ANSWER)
        if kind is Heard.MAILBOX and self.mode is not Mode.MAILBOX:
            self._answered(Answerer.VOICEMAIL)
            self.mode, self._mailbox_at = Mode.MAILBOX, now
            if not self.leave_message:
                return Act("end", reason="voicemail: hung up without a message", status=CallStatus.VOICEMAIL)
            self._message_due = True
            return Act("prepare", note="voicemail greeting")
        if kind is Heard.MENU:
            return self._menu(text, now)
        if kind is Heard.HOLD:
            return self._hold(now, "on hold")
        return None

    def person(self) -> None:
        """A person's words were answered: whatever answered first, a person is on the line now."""
        self._answered(Answerer.HUMAN)
        self.settled = True
        self.mode, self._hold_since, self._menu_words_at = Mode.CONVERSATION, None, None

    def due(self, now: float, far_end_quiet: bool) -> Act | None:
        """Timers: the mailbox message after the beep, a menu's choice once it has ended, hold's limit."""
        if self.mode is Mode.MAILBOX and self._message_due and far_end_quiet and not self.tones.in_beep():
            assert self._mailbox_at is not None
            beep = self.tones.beep_since(self._mailbox_at - 10.0)  # the beep may end before the words are read
            quiet_s = now - self._last_voice
            if (
                (beep is not None and now - beep >= BEEP_GAP_S and beep > self._last_voice - 0.5)
                or (beep is None and quiet_s >= NO_BEEP_WAIT_S)
                or now - self._mailbox_at >= MAILBOX_MAX_WAIT_S
            ):
                self._message_due = False
                return Act("message", note="after the beep" if beep is not None else "no beep heard")
        if self.mode is Mode.MENU and self._menu_words_at is not None and now - self._menu_words_at >= MENU_DECIDE_S:
            self._menu_words_at = None
            return self._press(self.route.choose(options(self._menu_text), final=True))
        if self._hold_since is not None and now - self._hold_since >= self.hold_max_s:
            return Act("end", reason=f"on hold longer than {self.hold_max_s:g} s", status=CallStatus.COMPLETED)
        return None

    def holding(self) -> bool:
        """On hold or in a machine's hands: the silence timer is off and the opening waits."""
        return self.mode is not Mode.CONVERSATION

    # ---- internals -------------------------------------------------------------------------------

    def _answered(self, who: Answerer) -> None:
        if self.answered_by is Answerer.UNKNOWN:
            self.answered_by = who

    def _hold(self, now: float, note: str) -> Act | None:
        if self.mode is Mode.HOLD:
            return None
        self.mode, self._hold_since, self._menu_words_at = Mode.HOLD, now, None
        return Act("note", note=note)

    def _menu(self, text: str, now: float) -> Act | None:
        self._answered(Answerer.IVR)
        first = self.mode is not Mode.MENU
        self.mode, self._hold_since = Mode.MENU, None
        heard_now = options(text)
        for option in heard_now:
            self._option_hearings[(option.key, option.label)] += 1
        if heard_now and max(self._option_hearings[(o.key, o.label)] for o in heard_now) >= MENU_REPEATS:
            return Act("end", reason=f"{MENU} repeated {MENU_REPEATS} times without a way through", note=MENU)
        self._menu_text = f"{self._menu_text} {text}".strip()
        act = self._press(self.route.choose(options(self._menu_text), final=False))
        if act is None:
            self._menu_words_at = now
            return Act("note", note=MENU) if first else None
        return act

    def _press(self, option: Option | None) -> Act | None:
        if option is None:
            return None
        self._menu_text, self._menu_words_at = "", None
        return Act("press", keys=option.key, note=f"{MENU}: pressed {option.key} ({option.label})")
