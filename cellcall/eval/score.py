"""Judge one finished eval call: did it succeed, is its report true, and how did the agent speak?

Pure functions of the persona, what the persona's script saw, and the call's call.json, so every rule
is tested on fake transcripts. Ground truth comes from the persona file (which states were reached,
what must never be said); the agent's words are its turns in call.json (what was actually played when
a turn was cut); the report is judged only on what call.json says.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any

from cellcall.eval.persona import Persona
from cellcall.eval.script import PersonaScript

CLOSING = re.compile(
    r"\b(?:good ?bye|bye|thanks?|thank you|have a (?:nice|good|great|lovely) (?:day|one|evening|afternoon))\b", re.I
)
IMPOLITE_ENDS = ("silence timeout", "max duration", "internal error", "reply failed", "line error", "interrupted")
_PAREN = re.compile(r"\([^)]*\)")
_TAG = re.compile(r"\[[A-Za-z_ ]{2,}\]|<\|?[a-z_]+\|?>")
_ROLE = re.compile(
    r"(?:^|[.!?]\s+|\n)\s*(?:receptionist|assistant|agent|caller|callee|user|system|human|ai|customer|patient|"
    r"other (?:party|person))\s*:",
    re.I,
)
_LABEL = re.compile(r"^\s*[A-Z][A-Za-z]{1,20}:\s")  # "Alex: Hi there" (a name as a speaker label)
_WORD = re.compile(r"[a-z0-9']+")
_SENTENCE = re.compile(r"(?<=[.!?:])\s+|\n+")
MIN_PROMPT_WORDS = 4  # shorter instruction fragments ("Thank you.") are ordinary speech


@dataclass
class RunScore:
    """One run's verdicts; `failures` says in words why `success` is False."""

    success: bool
    failures: list[str]
    objective_truth: str  # "met" | "not met" | "not judged"
    reported: str  # call.json objective_met
    false_yes: bool
    missed_yes: bool
    bad_quotes: list[str]
    wrong_outcome: str | None  # the report's outcome, when it does not say what was agreed
    prompt_text: list[str]  # agent turns that spoke prompt text
    repeats: list[str]  # agent turns identical (normalised) to an earlier one
    voice_to_voice_p50_ms: float | None
    voice_to_voice_ms: list[float]  # every reply the far end timed (its clock: end of its line -> agent audio)
    states: list[str]
    values: dict[str, str]
    status: str
    hangup: str
    folder: str = ""
    agent_turns: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)  # the agent's words as the persona transcribed them

    @property
    def report_true(self) -> bool:
        return not (self.false_yes or self.missed_yes or self.bad_quotes or self.wrong_outcome is not None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"report_true": self.report_true}


def normalise(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def prompt_sentences(instructions: str, goal_text: list[str]) -> list[str]:
    """The sentences of the agent's system prompt that are instructions, not the goal's own content.

    A Context fact ("Sam's patient number is 4471.") or the objective said aloud is ordinary speech;
    "Reply in one or two short spoken sentences." or a Never rule said aloud is the prompt leaking.
    """
    own = [normalise(text) for text in goal_text if text.strip()]
    out: list[str] = []
    for sentence in _SENTENCE.split(instructions):
        norm = normalise(sentence)
        if len(norm.split()) >= MIN_PROMPT_WORDS and not any(norm in text for text in own) and norm not in out:
            out.append(norm)
    return out


def speaks_prompt(text: str, prompt: list[str]) -> bool:
    """Stage directions, control tags, role labels, or a sentence of the instructions."""
    if _PAREN.search(text) or _TAG.search(text) or _ROLE.search(text) or _LABEL.search(text):
        return True
    norm = f" {normalise(text)} "
    return any(f" {sentence} " in norm for sentence in prompt)


def agent_words(call: dict[str, Any]) -> list[str]:
    """What the agent actually said, turn by turn (the played part of a cut turn)."""
    out = []
    for turn in call.get("turns") or []:
        if turn.get("speaker") == "agent":
            text = turn.get("spoken_text") if turn.get("barged_in") and turn.get("spoken_text") else turn.get("text")
            if text and text.strip():
                out.append(text.strip())
    return out


def other_party_turns(call: dict[str, Any]) -> list[str]:
    return [t.get("text") or "" for t in call.get("turns") or [] if t.get("speaker") == "caller"]


def repeats(turns: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for text in turns:
        norm = normalise(text)
        if norm and norm in seen:
            out.append(text)
        seen.add(norm)
    return out


def unquoted(call: dict[str, Any]) -> list[str]:
    """Quotes in objective_evidence / facts that are not verbatim in any of the other party's turns."""
    heard = [" ".join(text.split()) for text in other_party_turns(call)]
    quotes = [item.get("quote") for item in call.get("objective_evidence") or [] if isinstance(item, dict)]
    quotes += [item.get("quote") for item in call.get("facts") or [] if isinstance(item, dict)]
    bad = []
    for quote in quotes:
        text = " ".join(str(quote or "").split())
        if not text or not any(text in turn for turn in heard):
            bad.append(str(quote))
    return bad


def report_text(call: dict[str, Any]) -> str:
    """Everything the report says in words: summary, outcome, facts, next steps, evidence."""
    parts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for key in ("summary", "outcome", "facts", "next_steps", "objective_evidence"):
        walk(call.get(key))
    return "\n".join(parts)


def _filled(pattern: str, values: dict[str, str]) -> str:
    """A report pattern with its {value}s replaced by the (escaped) captured words."""
    return re.sub(r"\{(\w+)\}", lambda m: re.escape(values.get(m.group(1), "\0")), pattern)


def score_run(
    persona: Persona,
    script: PersonaScript,
    call: dict[str, Any],
    prompt: list[str],
    voice_to_voice_ms: list[float],
    folder: str = "",
) -> RunScore:
    """The verdicts for one call (see docs/personas.md for each rule)."""
    success, failures = persona.success, []
    said = agent_words(call)
    heard = [h.text for h in script.heard]
    reached = set(script.visits)
    if success.reached and not reached & set(success.reached):
        failures.append(f"never reached {' or '.join(success.reached)} (got to {script.state or 'nothing'})")
    for name in success.avoid:
        if name in reached:
            failures.append(f"reached {name}, which must be avoided")
    for pattern in success.never:
        hits = [text for text in said + heard if pattern.search(text)]
        if hits:
            failures.append(f"said what it must never say ({pattern.pattern!r}): {hits[0]!r}")
    hangup = str(call.get("hangup_reason") or "")
    if success.polite_end:
        closing = bool(said) and bool(CLOSING.search(said[-1]))
        if script.gave_up or not closing or any(hangup.startswith(bad) for bad in IMPOLITE_ENDS):
            last = said[-1] if said else "nothing"
            failures.append(f"no polite end ({hangup or 'no hang-up'}; last words {last!r})")
    text = report_text(call)
    for wanted in success.report:
        if not re.search(_filled(wanted, script.values), text, re.I):
            failures.append(f"the report does not mention /{wanted}/")
    outcome = str(call.get("outcome") or "")
    wrong_outcome = None  # a report-truth finding: the call itself may still have succeeded
    if reached & set(success.reached):
        if any(not re.search(_filled(wanted, script.values), outcome, re.I) for wanted in success.outcome):
            wrong_outcome = outcome
    if success.objective == "any":
        truth = "not judged"
    else:
        truth = "met" if success.objective == "reached" and reached & set(success.reached) else "not met"
    reported = str(call.get("objective_met") or "unknown")
    false_yes = reported == "yes" and truth == "not met"
    if false_yes:
        failures.append("the report says objective_met: yes, but it was not met")
    spoke_prompt = [t for t in said if speaks_prompt(t, prompt)]
    return RunScore(
        success=not failures,
        failures=failures,
        objective_truth=truth,
        reported=reported,
        false_yes=false_yes,
        missed_yes=truth == "met" and reported != "yes",
        bad_quotes=unquoted(call),
        wrong_outcome=wrong_outcome,
        prompt_text=spoke_prompt,
        repeats=repeats(said),
        voice_to_voice_p50_ms=round(statistics.median(voice_to_voice_ms)) if voice_to_voice_ms else None,
        voice_to_voice_ms=[round(v) for v in voice_to_voice_ms],
        states=list(script.visits),
        values=dict(script.values),
        status=str(call.get("status") or ""),
        hangup=hangup,
        folder=folder,
        agent_turns=said,
        heard=heard,
    )
