"""Phone menus: the options a prompt offers, and which key reaches the goal.

The route comes from the goal file only (`keys`, then `menu`, then the objective's words), never from
what the far end says; the menu's words only tell which key leads there. Matching is by words, with a
few telephone synonyms ("book" finds "appointments"), because that decides in microseconds on the
loop's thread; when nothing matches, a person (operator, reception) is the next best route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cellcall.agent.brief import STOPWORDS

_DIGITS = {"zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
           "eight": "8", "nine": "9", "star": "*", "pound": "#", "hash": "#"}  # fmt: skip
_KEY = r"(\d|zero|one|two|three|four|five|six|seven|eight|nine|star|pound|hash)"
# "for appointments, press 2" / "to book a visit press 2" / "press 2 for billing" / "2 for billing"
_FOR_THEN_KEY = re.compile(rf"\b(?:for|to)\s+([^,.;:!?]{{2,60}}?)[,.;\s]+(?:please\s+)?(?:press|dial|select|enter)\s+{_KEY}\b")
_KEY_THEN_FOR = re.compile(rf"\b(?:press|dial|select|enter|option)?\s*{_KEY}\s+(?:for|to)\s+([^,.;:!?]{{2,60}})")
_SYNONYMS = {
    "appointment": ("appointment", "appointments", "book", "booking", "schedule", "scheduling", "reschedule", "visit",
                    "cancel", "cleaning", "reservation", "reservations"),
    "person": ("operator", "receptionist", "reception", "representative", "agent", "person", "someone", "staff",
               "front desk", "all other", "other enquiries", "other inquiries", "anything else"),
    "billing": ("billing", "bill", "payment", "payments", "invoice", "account"),
    "hours": ("hours", "opening", "open", "directions", "location", "address"),
    "prescription": ("prescription", "prescriptions", "refill", "refills", "pharmacy", "medication"),
}  # fmt: skip
PERSON_ROUTE = "person"


@dataclass(frozen=True)
class Option:
    key: str
    label: str  # what the menu says the key is for, lower case


def options(text: str) -> list[Option]:
    """Every "for X press N" / "press N for X" the prompt offers, in the order heard.

    A menu keeps one order throughout, and the recogniser's full stops may fall on either side of
    "press N" ("for opening hours. Press one for appointments. Press two ..."), so both readings are
    taken and the one that explains more options wins (a tie: "for X, press N", the usual order); the
    other adds only keys the winner lacks."""
    words = " ".join(text.lower().replace("-", " ").split())
    readings = []
    for pattern, label_group, key_group in ((_FOR_THEN_KEY, 1, 2), (_KEY_THEN_FOR, 2, 1)):
        found: dict[str, Option] = {}
        for match in pattern.finditer(words):
            key = _DIGITS.get(match.group(key_group), match.group(key_group))
            found.setdefault(key, Option(key, match.group(label_group).strip()))
        readings.append(list(found.values()))
    best, other = sorted(readings, key=len, reverse=True)
    keys = {option.key for option in best}
    return best + [option for option in other if option.key not in keys]  # a menu that mixes the orders


def _topics(text: str) -> set[str]:
    """The synonym groups and content words of a text ("book a cleaning" -> appointment, book, cleaning)."""
    lowered = f" {' '.join(text.lower().split())} "
    topics = {group for group, words in _SYNONYMS.items() if any(f" {word} " in lowered for word in words)}
    content = {word for word in re.findall(r"[a-z]+", lowered) if word not in STOPWORDS and len(word) > 2}
    return topics | content


class MenuRoute:
    """Which key to press for a goal, menu after menu (loop thread only: `choose` advances the keys)."""

    def __init__(self, keys: list[str], route: str | None, objective: str) -> None:
        self._keys = list(keys)  # the goal's own keys, one group per menu, used up in order
        self.route = route
        self.objective = objective

    def choose(self, offered: list[Option], final: bool) -> Option | None:
        """The option to take from what was offered so far; `final`: the prompt has ended, so take
        the best route there is (a person) rather than wait for more."""
        if self._keys:
            return Option(self._keys.pop(0), "the goal's keys")
        wanted = _topics(self.route) if self.route else _topics(self.objective) - {PERSON_ROUTE}
        for option in offered:
            if wanted & _topics(option.label):
                return option
        if final:
            return next((option for option in offered if PERSON_ROUTE in _topics(option.label)), None)
        return None
