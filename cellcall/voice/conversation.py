"""What the language model sees: the goal's instructions plus a short recent history.

A 0.5B model loses the thread (and gets slow) with long prompts, so only the last few exchanges are
kept. The caller's words only ever appear as user messages, never inside the system prompt.
"""

from __future__ import annotations

from collections import deque

from cellcall.engines import ChatMessage


class Conversation:
    """The system prompt and the last `keep` messages."""

    def __init__(self, instructions: str, keep: int = 6) -> None:
        self.system = ChatMessage("system", instructions)
        self._history: deque[ChatMessage] = deque(maxlen=keep)

    def messages(self, user_text: str) -> list[ChatMessage]:
        """The prompt for a reply to `user_text` (history is not changed until `add`)."""
        return [self.system, *self._history, ChatMessage("user", user_text)]

    def add(self, user_text: str | None, agent_text: str | None) -> None:
        """Record one exchange as it was actually heard (a barged-in reply only up to the cut)."""
        if user_text:
            self._history.append(ChatMessage("user", user_text))
        if agent_text:
            self._history.append(ChatMessage("assistant", agent_text))

    def primer(self) -> list[ChatMessage]:
        """The messages to warm the model's prompt cache with while the phone rings."""
        return [self.system]
