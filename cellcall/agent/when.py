"""Days and times in speech: the slots the other party offers and the ones the goal wants.

Speech recognition writes times many ways ("9:30", "930", "nine thirty", "half past nine", "10 am",
"two o'clock"), so times are read into (hour, minute) where possible and kept as the words that were
said, which is what the agent repeats back and what a report may quote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY = re.compile(r"\b(mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?s?\b|\b(tomorrow|today)\b", re.I)
_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12,
}  # fmt: skip
_MINUTE_WORDS = {
    "fifteen": 15,
    "thirty": 30,
    "forty five": 45,
    "forty-five": 45,
    "o'clock": 0,
    "oh five": 5,
    "forty": 40,
    "twenty": 20,
}
_HOUR_WORD = "|".join(_NUMBER_WORDS)
_MIN_WORD = "|".join(sorted(_MINUTE_WORDS, key=len, reverse=True))
_TIME = re.compile(
    rf"\b(?:(?P<hm>\d{{3,4}})\b|(?P<h>\d{{1,2}})(?:[:.](?P<m>\d{{2}}))?\b|(?P<hw>{_HOUR_WORD})(?:[\s-]+(?P<mw>{_MIN_WORD}))?"
    rf"|half past (?P<hp>{_HOUR_WORD}|\d{{1,2}})|(?P<noon>noon|midday))"
    r"(?:\s*(?P<ap>a\.?\s?m\.?|p\.?\s?m\.?|o'clock|in the (?:morning|afternoon|evening)))?",
    re.I,
)
_PERIOD = re.compile(r"\b(morning|afternoon|evening|before noon|after noon|lunch ?time)\b", re.I)
_TIMEISH_CONTEXT = re.compile(r"\b(at|around|by|from|or|and|,)\s*$", re.I)


def day_of(word: str) -> str:
    low = word.lower()
    if low in ("tomorrow", "today"):
        return low
    for day in DAYS:
        if day.startswith(low[:3]):
            return day
    return low


@dataclass(frozen=True)
class Slot:
    """One day/time the other party mentioned, with the words they used."""

    text: str  # as said, e.g. "Friday at nine thirty"
    day: str | None  # "friday", "tomorrow", ...
    hour: int | None  # 0-23 when known (am/pm guessed from the period or office hours)
    minute: int | None
    period: str | None  # morning | afternoon | evening


@dataclass(frozen=True)
class Preference:
    """What the goal asks for: wanted days and periods, and the slot to move away from."""

    days: frozenset[str] = field(default_factory=frozenset)
    periods: frozenset[str] = field(default_factory=frozenset)
    latest_hour: int | None = None  # "before noon" -> 12
    earliest_hour: int | None = None
    avoid: tuple[Slot, ...] = ()

    def is_empty(self) -> bool:
        return not (self.days or self.periods or self.latest_hour or self.earliest_hour)

    def fits(self, slot: Slot) -> bool:
        """Would this slot meet the objective? Unknown parts of a slot do not count against it."""
        if any(_same(slot, avoided) for avoided in self.avoid):
            return False
        if self.days and slot.day is not None and slot.day not in self.days:
            return False
        if self.days and slot.day is None and slot.hour is None:
            return False
        period = slot.period or _period_of(slot.hour)
        if self.periods and period is not None and period not in self.periods:
            return False
        if self.latest_hour is not None and slot.hour is not None and slot.hour >= self.latest_hour:
            return False
        return not (self.earliest_hour is not None and slot.hour is not None and slot.hour < self.earliest_hour)

    def spoken(self) -> str:
        """The preference as words: "a Friday morning"."""
        days = " or ".join(d.capitalize() for d in sorted(self.days, key=_day_order))
        periods = " or ".join(sorted(self.periods))
        if self.latest_hour == 12 and not periods:
            periods = "morning"
        return " ".join(p for p in (days, periods) if p) or "another time"


def _day_order(day: str) -> int:
    return DAYS.index(day) if day in DAYS else 7


def _same(a: Slot, b: Slot) -> bool:
    return a.day is not None and a.day == b.day and a.hour is not None and a.hour == b.hour and a.minute == b.minute


def _period_of(hour: int | None) -> str | None:
    if hour is None:
        return None
    return "morning" if hour < 12 else "afternoon" if hour < 17 else "evening"


def _hour_of(match: re.Match[str]) -> tuple[int | None, int | None]:
    if match.group("noon"):
        return 12, 0
    if match.group("hm"):
        digits = match.group("hm")
        hour, minute = int(digits[:-2]), int(digits[-2:])
        return (hour, minute) if 1 <= hour <= 12 and minute < 60 else (None, None)
    if match.group("h"):
        hour = int(match.group("h"))
        minute = int(match.group("m")) if match.group("m") else 0
        return (hour, minute) if hour <= 23 and minute < 60 else (None, None)
    if match.group("hp"):
        raw = match.group("hp").lower()
        return (_NUMBER_WORDS.get(raw) or int(raw)), 30
    hour_word = match.group("hw").lower()
    minute_word = (match.group("mw") or "").lower()
    return _NUMBER_WORDS[hour_word], _MINUTE_WORDS.get(minute_word, 0)


def _is_time(match: re.Match[str], text: str) -> bool:
    """A bare number is a time only next to a day, "at", an am/pm, or a minute part."""
    if match.group("noon") or match.group("hp") or match.group("ap") or match.group("m") or match.group("mw"):
        return True
    before = text[max(0, match.start() - 12) : match.start()]
    return bool(_TIMEISH_CONTEXT.search(before)) or bool(_DAY.search(before))


def _with_ampm(hour: int, marker: str | None, period: str | None) -> int:
    marker = (marker or "").lower().replace(".", "").replace(" ", "")
    if marker == "am":
        return 0 if hour == 12 else hour
    if marker == "pm" or "afternoon" in marker or "evening" in marker or period in ("afternoon", "evening"):
        return hour + 12 if hour < 12 else hour
    if "morning" in marker or period == "morning":
        return 0 if hour == 12 else hour
    return hour + 12 if 1 <= hour <= 6 else hour  # office hours: "at 2" is 2 pm


def slots_in(text: str) -> list[Slot]:
    """Every day/time offered in `text`, each time paired with the nearest day said before it."""
    days = [(m.start(), m.end(), day_of(m.group(0).rstrip("sS") if m.group(1) else m.group(0))) for m in _DAY.finditer(text)]
    periods = [(m.start(), m.group(1).lower()) for m in _PERIOD.finditer(text)]
    out: list[Slot] = []
    used_days: set[int] = set()
    for match in _TIME.finditer(text):
        if not _is_time(match, text):
            continue
        hour, minute = _hour_of(match)
        if hour is None:
            continue
        before = [d for d in days if d[1] <= match.start()]
        after = [d for d in days if d[0] >= match.end() and d[0] - match.end() <= 12]
        day_span = before[-1] if before else (after[0] if after else None)
        period = next((p for at, p in periods if abs(at - match.end()) <= 25), None)
        ap = match.group("ap")
        if ap and "in the" in ap.lower():
            period = ap.lower().split()[-1]
        if period in ("before noon", "lunch time", "lunchtime", "after noon"):
            period = "morning" if period == "before noon" else "afternoon"
        hour = _with_ampm(hour, ap, period)
        if ap and ap.lower().replace(".", "").replace(" ", "") in ("am", "pm"):
            period = _period_of(hour)
        if day_span is not None and day_span[0] in used_days:  # "Friday at 9:30 or 11": the 11 is "Friday at 11"
            label = f"{text[day_span[0] : day_span[1]]} at {match.group(0).strip()}"
        else:
            start = day_span[0] if day_span and day_span[0] < match.start() else match.start()
            end = max(match.end(), day_span[1]) if day_span else match.end()
            label = text[start:end]
        if day_span:
            used_days.add(day_span[0])
        out.append(Slot(label.strip(" ,."), day_span[2] if day_span else None, hour, minute, period or _period_of(hour)))
    for start, end, day in days:  # a day offered without a time ("Friday is open")
        if start not in used_days:
            period = next((p for at, p in periods if 0 <= at - end <= 12), None)
            label = text[start:end] + (f" {period}" if period else "")
            out.append(Slot(label.strip(), day, None, None, period))
    return out


def preference_from(objective: str, context: str) -> Preference:
    """Wanted days/periods from the objective (after "to ..." when it says "from X to Y") and Context."""
    target, avoid_text = objective, ""
    moved = re.search(r"\bfrom\b(.*?)\bto\b(.*)", objective, re.I)
    if moved:
        avoid_text, target = moved.group(1), moved.group(2)
    wanted_text = f"{target} {context}"
    days = frozenset(day_of(m.group(0).rstrip("sS")) for m in _DAY.finditer(wanted_text) if m.group(1))
    if moved:
        avoided_days = {day_of(m.group(0).rstrip("sS")) for m in _DAY.finditer(avoid_text) if m.group(1)}
        days = frozenset(days - avoided_days) or days
    periods = {m.group(1).lower() for m in _PERIOD.finditer(wanted_text)}
    latest = 12 if "before noon" in periods or re.search(r"\bmorning\b", wanted_text, re.I) else None
    earliest = 12 if "after noon" in periods or re.search(r"\bafternoon\b", wanted_text, re.I) else None
    if latest and earliest:
        latest = earliest = None
    clean = frozenset(
        {"morning" if p == "before noon" else "afternoon" if p == "after noon" else p for p in periods}
        - {"lunch time", "lunchtime"}
    )
    return Preference(days, clean, latest, earliest, tuple(slots_in(avoid_text)))
