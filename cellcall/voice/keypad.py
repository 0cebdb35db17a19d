"""Pressing phone keys during a call without stalling the audio: AT+VTS waits for the modem's OK.

Owned by the voice loop's thread (`press`, `close`, `sent`); each press runs on its own short "dtmf"
thread, which touches only the line (whose command channel takes one command at a time).
"""

from __future__ import annotations

import logging
import threading

from cellcall.line import Line

LOG = logging.getLogger(__name__)
JOIN_S = 1.0  # at the end of a call, a key on its way still goes out before the hang-up


class KeyPad:
    def __init__(self, line: Line) -> None:
        self.line = line
        self.sent: list[str] = []  # keys pressed, in order (call.json's dtmf_sent)
        self._threads: list[threading.Thread] = []

    def press(self, keys: str) -> None:
        self.sent.append(keys)
        thread = threading.Thread(target=self._send, args=(keys,), name="dtmf", daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        for thread in self._threads:
            thread.join(JOIN_S)

    def _send(self, keys: str) -> None:
        try:
            self.line.send_dtmf(keys)
        except Exception as exc:  # noqa: BLE001 - a key that did not go out is logged, the call goes on
            LOG.warning("DTMF %s not sent: %s", keys, exc)
