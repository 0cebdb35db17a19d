"""`cellcall doctor` for `engines.relay`: reachable, token accepted, its models, a round trip."""

from __future__ import annotations

from cellcall.config import Settings
from cellcall.relay.client import RelayError, RelayPool, describe

PINGS = 5


def check_relay(settings: Settings) -> tuple[list[str], bool]:
    """Doctor lines for the relay and whether it is usable; nothing is raised, the token never shown."""
    url = settings.engines.relay
    try:
        pool = RelayPool(url, settings.relay.token, settings.engines.relay_timeout_s, settings.engines.relay_ca)
        hello = pool.connect()
        rtts = sorted(pool.ping() for _ in range(PINGS))
    except RelayError as exc:
        hint = " (check CELLCALL_RELAY_TOKEN on both sides)" if "unauthorized" in str(exc) else ""
        return [f"relay    FAILED: {exc}{hint}", f"fallback {settings.engines.relay_fallback}"], False
    return [
        f"relay    ok: {pool.address} (token accepted, protocol {hello.get('version')})",
        f"models   {describe(hello)}",
        f"rtt      {rtts[len(rtts) // 2] * 1000:.1f} ms median of {PINGS} PINGs",
        f"fallback {settings.engines.relay_fallback}",
    ], True
