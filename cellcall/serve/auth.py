"""Who may use the API and how often: the bearer token, the loopback rule and a per-token rate.

A listener off loopback must have a token (refused at start otherwise); the token is compared in
constant time and never appears in a log line, an error message or a file name (keys on disk are
an HMAC of it). With no token configured the API answers loopback clients only.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import threading
import time
from dataclasses import dataclass


class ServeError(RuntimeError):
    """`cellcall serve` cannot start (bad --listen, no token off loopback, missing TLS file)."""


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything


def parse_listen(text: str) -> ListenAddress:
    """`HOST:PORT` or `[IPv6]:PORT` -> ListenAddress; ServeError with an example otherwise."""
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ServeError(f"--listen {text!r} must look like 127.0.0.1:8765 or [::1]:8765")
    return ListenAddress(host, int(port))


def check_exposure(listen: ListenAddress, token: str) -> None:
    """Refuse to listen off loopback without a token: the API can place phone calls."""
    if not listen.loopback and not token:
        raise ServeError(
            f"refusing to listen on {listen.host}:{listen.port} without a token: set CELLCALL_API_TOKEN "
            "(or [api] token in cellcall.toml), or listen on 127.0.0.1"
        )
    if token and len(token) < 16:
        raise ServeError("the API token is too short: use at least 16 random characters (e.g. `openssl rand -hex 32`)")


def token_id(token: str, purpose: str = "client") -> str:
    """A stable name for a token that reveals nothing about it (rate buckets, idempotency files)."""
    return hmac.new(token.encode("utf-8"), purpose.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def bearer_ok(header: str | None, token: str) -> bool:
    """True when `Authorization: Bearer <token>` matches (constant time); no token configured: always."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))


class RateLimiter:
    """A token bucket per key: `per_minute` requests, refilled evenly. Any thread may call `allow`."""

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:
        self.capacity = max(1, per_minute)
        self._refill = self.capacity / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens left, at)
        self._lock = threading.Lock()

    def allow(self, key: str) -> float:
        """0.0 when the request may go ahead, else the seconds until one may (for Retry-After)."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.capacity), now))
            tokens = min(float(self.capacity), tokens + (now - at) * self._refill)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._refill
