"""Rewrite text the way a person would say it on the phone, before TTS reads it.

espeak (under piper) reads "3:30", "$45.50" or "555-0132" in ways a listener mishears: times become
arithmetic, phone numbers become large numbers. Phone numbers and long codes are read digit by
digit, grouped as written, because the far end writes them down.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_IRREGULAR = {
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
_MONTHS = "January February March April May June July August September October November December".split()
_MONTH_ABBR = {m[:3].lower(): m for m in _MONTHS}
_CURRENCY = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "€": ("euro", "euros", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
}
_ABBREVIATIONS = {
    "Dr.": "Doctor",
    "Mr.": "Mister",
    "Mrs.": "Missus",
    "Ms.": "Miz",
    "Jr.": "Junior",
    "Sr.": "Senior",
    "St.": "Street",
    "Ave.": "Avenue",
    "Blvd.": "Boulevard",
    "Rd.": "Road",
    "Apt.": "Apartment",
    "appt.": "appointment",
    "appt": "appointment",
    "approx.": "approximately",
    "e.g.": "for example",
    "i.e.": "that is",
    "etc.": "et cetera",
    "vs.": "versus",
    "Mon.": "Monday",
    "Tue.": "Tuesday",
    "Wed.": "Wednesday",
    "Thu.": "Thursday",
    "Fri.": "Friday",
    "Sat.": "Saturday",
    "Sun.": "Sunday",
    "min.": "minutes",
    "mins": "minutes",
    "hrs": "hours",
    "ASAP": "as soon as possible",
    "FYI": "for your information",
}
_DIGIT_WORDS = {str(i): _ONES[i] for i in range(10)}


def number_words(n: int) -> str:
    """Cardinal words for 0 <= n < 10**12 ("forty-five", "one thousand two hundred")."""
    if n < 0:
        return "minus " + number_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            high, rest = divmod(n, size)
            return f"{number_words(high)} {name}" + (f" {number_words(rest)}" if rest else "")
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    words = number_words(n)
    head, sep, last = words.rpartition("-") if "-" in words.split()[-1] else words.rpartition(" ")
    if last in _ORDINAL_IRREGULAR:
        last = _ORDINAL_IRREGULAR[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return head + sep + last


def year_words(year: int) -> str:
    """2026 -> "twenty twenty-six"; 2000 -> "two thousand"; 1905 -> "nineteen oh five"."""
    high, low = divmod(year, 100)
    if year < 1000 or (2000 <= year < 2010):
        return number_words(year)
    if low == 0:
        return f"{number_words(high)} hundred"
    return f"{number_words(high)} " + (f"oh {_ONES[low]}" if low < 10 else number_words(low))


def digits_words(digits: str) -> str:
    return " ".join(_DIGIT_WORDS[d] for d in digits if d.isdigit())


def _time(match: re.Match[str]) -> str:
    hour, minute = int(match.group("h")), int(match.group("m") or 0)
    meridiem = (match.group("ampm") or "").replace(".", "").lower()
    if hour > 23 or minute > 59:
        return match.group(0)
    if not meridiem and match.group("m") is not None and (hour == 0 or hour > 12):
        meridiem = "am" if hour < 12 else "pm"
        hour = hour % 12 or 12
    spoken = number_words(hour)
    if minute:
        spoken += " " + (f"oh {_ONES[minute]}" if minute < 10 else number_words(minute))
    elif not meridiem:
        spoken += " o'clock"
    ends_sentence = match.group(0).endswith(".") and re.match(r"\s*(?:$|[A-Z])", match.string[match.end() :])
    return spoken + (f" {meridiem[0]} m" if meridiem else "") + ("." if ends_sentence else "")


def _money(match: re.Match[str]) -> str:
    one, many, cent, cents = _CURRENCY[match.group("cur")]
    whole = int(match.group("whole").replace(",", ""))
    fraction = int((match.group("frac") or "0").ljust(2, "0")[:2])
    parts = [f"{number_words(whole)} {one if whole == 1 else many}"] if whole or not fraction else []
    if fraction:
        parts.append(f"{number_words(fraction)} {cent if fraction == 1 else cents}")
    return " and ".join(parts)


def _iso_date(match: re.Match[str]) -> str:
    year, month, day = int(match.group(1)), int(match.group(2)), int(match.group(3))
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return match.group(0)
    return f"{_MONTHS[month - 1]} {ordinal_words(day)}, {year_words(year)}"


def _month_day(match: re.Match[str]) -> str:
    month = _MONTH_ABBR[match.group("mon")[:3].lower()]
    day = int(match.group("day"))
    if not 1 <= day <= 31:
        return match.group(0)
    year = f", {year_words(int(match.group('year')))}" if match.group("year") else ""
    return f"{month} {ordinal_words(day)}{year}"


def _phone(match: re.Match[str]) -> str:
    groups = [g for g in re.split(r"[^\d+]+", match.group(0)) if g]
    spoken = []
    for group in groups:
        prefix = "plus " if group.startswith("+") else ""
        spoken.append(prefix + digits_words(group))
    return ", ".join(spoken)


def _ordinal(match: re.Match[str]) -> str:
    return ordinal_words(int(match.group(1)))


def _plain_number(match: re.Match[str]) -> str:
    text = match.group(0)
    digits = text.replace(",", "")
    if "," not in text and len(digits) >= 5:
        return digits_words(digits)  # codes, IDs, zip codes: digit by digit
    return number_words(int(digits))


_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"#\s?(?=\d)"), "number "),
    (re.compile(r"[*_#`]+"), " "),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), _iso_date),
    (
        re.compile(
            r"\b(?P<mon>(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)[a-z]*\.?)\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?:,?\s+(?P<year>\d{4})\b)?"
        ),
        _month_day,
    ),
    (re.compile(r"(?P<cur>[$€£])\s?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d{1,2}))?\b"), _money),
    (re.compile(r"(?<![\w:])(?P<h>\d{1,2}):(?P<m>\d{2})(?:\s*(?P<ampm>[ap]\.?m\.?))?(?![\w:])", re.I), _time),
    (re.compile(r"(?<![\w:])(?P<h>\d{1,2})(?P<m>)\s*(?P<ampm>[ap]\.?m\.?)(?!\w)", re.I), _time),
    # speech recognition writes "at 9.30" and "at 930" for a time said aloud
    (re.compile(r"(?<=\bat )(?P<h>\d{1,2})[.]?(?P<m>[0-5]\d)(?:\s*(?P<ampm>[ap]\.?m\.?))?(?![\w.]\d|\s*\d)", re.I), _time),
    # a number named as such ("patient number 4471", "number is 4471") is read digit by digit
    (
        re.compile(r"(?<=\bnumber )\d{2,}\b|(?<=\bnumber is )\d{2,}\b|(?<=\bID )\d{2,}\b", re.I),
        lambda m: digits_words(m.group(0)),
    ),
    (
        re.compile(
            r"(?<![\w])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}\b|(?<![\w$€£.,])\d{3}[\s.-]\d{4}\b"
        ),
        _phone,
    ),
    (re.compile(r"\+\d{8,15}\b"), _phone),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), _ordinal),
    (re.compile(r"(\d+(?:\.\d+)?)\s?%"), lambda m: f"{m.group(1)} percent"),
    (re.compile(r"\s&\s"), " and "),
    (re.compile(r"(?<![\w.,:-])(?:\d{1,3}(?:,\d{3})+|\d+)(?!\w|[.,:-]\d)"), _plain_number),
]


def _abbreviations(text: str) -> str:
    for short, long in _ABBREVIATIONS.items():
        text = re.sub(r"(?<![\w.])" + re.escape(short) + (r"(?!\w)" if short.endswith(".") else r"\b"), long, text)
    return text


def speakable(text: str) -> str:
    """Text rewritten for the ear: times, dates, money, phone numbers, abbreviations, no markdown."""
    text = _abbreviations(text)
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return re.sub(r"\s+([.,!?;:])", r"\1", " ".join(text.split()))
