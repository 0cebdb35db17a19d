"""One emulated USB serial interface: a raw pseudo-terminal reachable through a stable symlink.

The symlink plays the part of /dev/serial/by-id/...-ifNN-port0: when the emulated modem resets or
drops off the bus, the pty is closed (the host's open file gets EIO, the path disappears) and later
a fresh pty is created and the same path repointed, exactly what a re-enumerating USB modem does.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
import tty
from pathlib import Path


class PtyPort:
    """A pty pair whose slave is offered to the host at `link`; the emulator talks to the master."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self._lock = threading.Lock()
        self._master: int | None = None

    @property
    def present(self) -> bool:
        return self._master is not None

    def appear(self) -> None:
        """Create a fresh raw pty and point the link at it (USB enumeration)."""
        master, slave = os.openpty()
        # Raw mode on the pair: no echo, no CR/NL translation, no signals; PCM bytes must pass untouched.
        # The settings live as long as the master, so they survive the host closing and reopening.
        tty.setraw(slave)
        os.set_blocking(master, False)
        staging = self.link.with_name(self.link.name + ".new")
        staging.unlink(missing_ok=True)
        os.symlink(os.ttyname(slave), staging)
        # Closing our slave fd lets a POLLHUP on the master tell whether the host has the port open.
        os.close(slave)
        with self._lock:
            self._master = master
            os.replace(staging, self.link)

    def vanish(self) -> None:
        """Remove the device: the host's reads fail and the path is gone until `appear`."""
        with self._lock:
            self.link.unlink(missing_ok=True)
            if self._master is not None:
                os.close(self._master)
            self._master = None

    def host_attached(self) -> bool:
        """True while the host has the port open."""
        fd = self._master
        if fd is None:
            return False
        poller = select.poll()
        poller.register(fd, select.POLLHUP)
        try:
            return not poller.poll(0)
        except OSError:
            return False

    def wait_readable(self, timeout: float) -> bool:
        """True when host bytes are waiting; False on timeout, or at once (after `timeout`) when nobody has it open."""
        fd = self._master
        if fd is None:
            time.sleep(timeout)
            return False
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        try:
            events = poller.poll(timeout * 1000)
        except OSError:
            return False
        if events and events[0][1] & select.POLLHUP:
            time.sleep(timeout)  # no host: poll would return at once forever
            return False
        return bool(events and events[0][1] & select.POLLIN)

    def read(self, limit: int) -> bytes:
        """Up to `limit` bytes the host wrote, without blocking (b"" when none or gone)."""
        if limit <= 0:
            return b""
        with self._lock:
            if self._master is None:
                return b""
            try:
                return os.read(self._master, limit)
            except BlockingIOError:
                return b""
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return b""
                raise

    def write(self, data: bytes) -> int:
        """Write what fits without blocking; returns the count (a real modem drops what the host does not read)."""
        with self._lock:
            if self._master is None or not data:
                return 0
            try:
                return os.write(self._master, data)
            except BlockingIOError:
                return 0
            except OSError as exc:
                if exc.errno in (errno.EIO, errno.EBADF):
                    return 0
                raise
