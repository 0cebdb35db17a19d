"""What the model sees: a compact system prompt, two caller-side examples and an append-only history.

Small models stay in role when the other party is named as such, the facts are short lines and the
examples show the exact shape of a reply. Every user message carries the other party's words in quotes
(untrusted: never inside the system prompt) and the next step the planner chose. The history only grows,
so llama.cpp's prompt cache keeps matching (a sliding window re-read the whole history every turn: 776
against 374 ms to the first token, ../shared/reference/latency-levers.md); it is compacted in one big
step only when it nears the context size.
"""

from __future__ import annotations

from cellcall.agent.brief import Brief
from cellcall.engines import ChatMessage

CHARS_PER_TOKEN = 3.5  # rough, for English on Qwen's tokenizer; only decides when to compact


def system_prompt(brief: Brief) -> str:
    behalf = f" on behalf of {brief.principal}" if brief.principal else ""
    if brief.direction == "inbound":
        role = (
            f"You are {brief.name}, answering the phone{behalf}. The caller is not {brief.principal or 'the owner'}. "
            "You speak only as yourself."
        )
    else:
        role = (
            f"You are {brief.name}{behalf}. You phoned the other person: you are the caller, you ask them for "
            "something. You do not work for them and never offer them help."
        )
    lines = [role, f"Goal of the call: {brief.objective}"]
    if brief.sayable_facts():
        lines.append("Facts you may say: " + " ".join(brief.sayable_facts()))
    if brief.never:
        lines.append("Rules that always hold: " + " ".join(brief.never))
    lines.append(
        f"Each message gives what the other person said and the next step. Answer with only the words "
        f"{brief.name} says aloud: one or two short sentences, plain words, no notes, no brackets, no names "
        "before the words. Never invent facts, numbers or times."
    )
    return "\n".join(lines)


def user_message(their_words: str, step: str) -> str:
    quoted = their_words.replace('"', "'")
    return f'They said: "{quoted}"\nNext step: {step}'


def examples(brief: Brief) -> list[ChatMessage]:
    """Two exchanges in the call's own terms: the shape of a good reply, cached with the system prompt."""
    if brief.direction == "inbound":
        return [
            ChatMessage("user", user_message("Hi, is this the right number?", "Say who you are and ask who is calling.")),
            ChatMessage("assistant", brief.opening),
        ]
    behalf = f" calling for {brief.principal}" if brief.principal else ""
    return [
        ChatMessage("user", user_message("Hello?", "Say who you are.")),
        ChatMessage("assistant", f"Hi, this is {brief.name}{behalf}."),
        ChatMessage("user", user_message("What is this about?", f"Say why you are calling: {brief.objective}.")),
        ChatMessage("assistant", brief.purpose()),
    ]


def compacted(history: tuple[ChatMessage, ...], budget_chars: int) -> tuple[ChatMessage, ...]:
    """The history, or its newer half when it outgrew the budget (rare: the cache is rebuilt once)."""
    if sum(len(m.content) for m in history) <= budget_chars:
        return history
    keep = len(history) // 2
    keep -= keep % 2  # whole exchanges
    return history[len(history) - keep :]
