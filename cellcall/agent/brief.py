"""The goal read once into the compact facts a small model and the planner need.

Persona text like "Alex, a friendly assistant calling on behalf of Sam Taylor" gives the agent's name and
whom it speaks for; the Context section gives facts one sentence each; the Never section gives rules
that hold whatever the other party says; the objective and Context give the wanted days and times.
Everything here is computed from the goal file (the user's text), never from the other party's words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cellcall.agent.when import Preference, preference_from
from cellcall.goal import NEVER_SECTION, Goal

_NAME = re.compile(r"^\s*([A-Z][\w'-]*)(?=[,\s]|$)")
_PRINCIPAL = re.compile(
    r"(?:on behalf of|calling for|working for|assistant (?:to|of|for)|for)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)"
    r"|([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)'s (?:phone|assistant|office|line)"
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
STOPWORDS = frozenset(
    "a an the and or but of to for in on at by with from is are was be been it its this that these those i you we they "
    "he she his her their our your my me us them do does did can could would should will shall may might must have has "
    "had not no yes please any some what which who whom whose when where why how there here than then so if as about "
    "just only also very all".split()
)


_NEVER_OBJECT = re.compile(
    r"\b(?:share|say|tell|give|disclose|reveal|mention|confirm|read out|spell out)\s+(?:out\s+)?(.+?)(?=[,.;:!?]|\bnot\b|\beven\b|\bto\b|$)",
    re.I,
)
_PRIVATE = re.compile(
    r"\b(?:not to be (?:said|shared|spoken)|do not (?:say|share)|don'?t (?:say|share)|confidential|private)\b", re.I
)


GENERIC = frozenset("anything anyone details back there here now home time today later number".split())  # too common to protect


def content_words(text: str) -> set[str]:
    """Lower-case words that carry meaning (for matching questions to facts and rules)."""
    return {w for w in re.findall(r"[a-z0-9']+", text.lower()) if w not in STOPWORDS and len(w) > 1}


def sentences_of(text: str) -> list[str]:
    """Non-empty sentences/lines of a markdown section, list markers removed."""
    out = []
    for piece in _SENTENCE.split(text):
        piece = re.sub(r"^\s*(?:[-*+]|\d+[.)])\s+", "", piece).strip()
        if piece:
            out.append(piece)
    return out


@dataclass(frozen=True)
class Brief:
    """What the agent knows about its own call; immutable for the whole call."""

    name: str  # how the agent introduces itself ("Alex")
    principal: str | None  # whom it speaks for ("Sam Taylor"), if the persona says
    persona: str
    objective: str
    direction: str  # outbound | inbound
    facts: tuple[str, ...]  # Context sentences and other sections, one fact each
    never: tuple[str, ...]  # rules from the Never section
    want: Preference  # days/times the objective asks for (empty for non-scheduling goals)
    opening: str
    hangup_when: tuple[str, ...] = field(default=())

    def protected(self) -> list[set[str]]:
        """The word sets each Never rule forbids saying ("Never share Sam's date of birth" -> {date, birth})."""
        principal = content_words(self.principal or "") | {f"{w}'s" for w in content_words(self.principal or "")}
        sets = []
        for rule in self.never:
            match = _NEVER_OBJECT.search(rule)  # the first object only: "..., not even to confirm identity" explains it
            words = content_words(match.group(1)) - principal - GENERIC if match else set()
            if words:
                sets.append(words)
        return sets

    def sayable_facts(self) -> tuple[str, ...]:
        """Facts the agent may say: not marked private, not what a Never rule protects."""
        protected = self.protected()
        return tuple(
            fact
            for fact in self.facts
            if not _PRIVATE.search(fact) and not any(words <= content_words(fact) for words in protected)
        )

    def purpose(self) -> str:
        """The objective as a spoken sentence: "I'm calling to move Sam's cleaning ..."."""
        objective = self.objective.strip().rstrip(".")
        if not objective:
            return "I'm calling about an appointment."
        first, rest = objective[0], objective[1:]
        return f"I'm calling to {first.lower()}{rest}."


def brief_of(goal: Goal) -> Brief:
    name_match = _NAME.match(goal.persona or "")
    name = name_match.group(1) if name_match else "the assistant"
    if name.lower() in {"a", "an", "the"}:
        name = "the assistant"
    principal_match = _PRINCIPAL.search(goal.persona or "")
    principal = next((g for g in principal_match.groups() if g), None) if principal_match else None
    facts: list[str] = []
    for heading, text in goal.sections.items():
        if heading != NEVER_SECTION:
            facts.extend(sentences_of(text))
    never = tuple(sentences_of(goal.sections.get(NEVER_SECTION, "")))
    want = preference_from(goal.objective, " ".join(facts))
    opening = goal.opening or default_opening(name, principal, goal.objective, goal.direction)
    return Brief(
        name=name,
        principal=principal,
        persona=goal.persona,
        objective=goal.objective,
        direction=goal.direction,
        facts=tuple(facts),
        never=never,
        want=want,
        opening=opening,
        hangup_when=tuple(goal.hangup.when),
    )


def default_opening(name: str, principal: str | None, objective: str, direction: str) -> str:
    """An opening written by code, never by the model: a greeting, who is speaking and why."""
    if direction == "inbound":
        whose = f"{principal}'s phone" if principal else "this phone"
        return f"Hello, you've reached {whose}, this is {name}. Who's calling, please?"
    behalf = f" calling for {principal}" if principal else ""
    topic = objective.strip().rstrip(".")
    topic = topic[0].lower() + topic[1:] if topic else "a quick question"
    return f"Hi, this is {name}{behalf}. I'm calling to {topic}."
