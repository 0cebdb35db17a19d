"""Who may be dialled, when and how often: checked before anything touches a line.

The policy comes only from the settings (cellcall.toml, environment, flags); a goal file has no key
that reaches it. Emergency and premium-rate numbers are refused unless the configuration says
otherwise, by a small explicit table plus libphonenumber's per-country metadata as a backstop.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import UTC, datetime, time, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers

from cellcall.config import PolicySettings
from cellcall.phone import E164, is_emergency, normalize_number, split_e164

__all__ = [
    "DialLedger",
    "EMERGENCY",
    "PREMIUM",
    "PolicyRefusal",
    "check_dial",
    "emergency_service",
    "normalize_number",
    "premium_range",
]

# National short numbers that reach emergency services, by calling code. 112 and 911 are refused
# under every code (GSM handsets route them to emergency services in most networks).
EMERGENCY: dict[int, tuple[str, ...]] = {
    1: ("911",),  # US, Canada and the NANP
    7: ("101", "102", "103", "104"),  # Russia
    33: ("15", "17", "18", "114", "115", "119", "191", "196", "197"),  # France
    34: ("061", "080", "085", "088", "091", "092"),  # Spain
    39: ("113", "115", "118", "1530"),  # Italy
    44: ("999",),  # United Kingdom
    49: ("110",),  # Germany
    52: ("065", "066", "080", "060"),  # Mexico
    55: ("190", "192", "193"),  # Brazil
    61: ("000", "106"),  # Australia
    64: ("111",),  # New Zealand
    81: ("110", "118", "119"),  # Japan
    82: ("119", "112"),  # South Korea
    86: ("110", "119", "120", "122"),  # China
    91: ("100", "101", "102", "108"),  # India
}
EVERYWHERE = ("112", "911")

# Premium-rate ranges as E.164 patterns, with what they are.
PREMIUM: tuple[tuple[str, str], ...] = (
    (r"\+1900", "NANP 900 premium-rate"),
    (r"\+1[2-9]\d{2}976", "NANP 976 pay-per-call exchange"),
    (r"\+449", "UK 09 premium-rate"),
    (r"\+4487[123]", "UK 0871-0873 service numbers"),
    (r"\+44118\d{3}$", "UK 118xxx directory enquiries"),
    (r"\+4990", "Germany 0900 premium-rate"),
    (r"\+3389", "France 089 premium-rate"),
    (r"\+3480[36]|\+34807|\+34905", "Spain 803/806/807/905 premium-rate"),
    (r"\+39899|\+39892", "Italy 899/892 premium-rate"),
    (r"\+6119", "Australia 19 premium-rate"),
    (r"\+64900", "New Zealand 0900 premium-rate"),
    (r"\+35315", "Ireland 15xx premium-rate"),
)
_PREMIUM = tuple((re.compile(pattern), label) for pattern, label in PREMIUM)
_QUIET = re.compile(r"^\s*([01]?\d|2[0-3]):([0-5]\d)\s*-\s*([01]?\d|2[0-3]):([0-5]\d)\s*$")
_PREFIX = re.compile(r"^\+\d{1,15}$")


class PolicyRefusal(Exception):
    """The dialling policy forbids this call; `reason` is a sentence for the user and the report."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # emergency | premium | denylist | allowlist | rate | quiet-hours | invalid | config


def emergency_service(number: str) -> bool:
    """True for an E.164 number that reaches emergency services (table, then libphonenumber)."""
    try:
        code, national = split_e164(number)
    except ValueError:
        return False
    if national in EMERGENCY.get(code, ()) or national in EVERYWHERE:
        return True
    if code == 1 and national.startswith("911"):
        return True
    return is_emergency(number)


def premium_range(number: str) -> str | None:
    """What premium-rate range an E.164 number falls in, or None."""
    for pattern, label in _PREMIUM:
        if pattern.match(number):
            return label
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.PREMIUM_RATE:
        return "premium-rate (libphonenumber)"
    return None


class DialLedger:
    """Append-only JSONL of dial attempts, shared safely by several processes (flock + O_APPEND)."""

    FILE = ".dials.jsonl"  # in the outbox root, beside the call folders

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_outbox(cls, outbox_root: Path | str) -> DialLedger:
        """The one ledger every process that dials from this outbox shares."""
        return cls(Path(outbox_root) / cls.FILE)

    def record(self, number: str, at: datetime) -> None:
        """Note one dial attempt; one short line per write, so a crash never corrupts earlier lines."""
        if at.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware")
        line = json.dumps({"at": at.astimezone(UTC).isoformat(), "number": number}) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"  # a writer died mid-line
            os.write(fd, (("\n" if torn else "") + line).encode("utf-8"))
        finally:
            os.close(fd)

    def count_since(self, t: datetime, number: str | None = None) -> int:
        """Attempts at or after `t` (to any number, or to `number`); unreadable lines are skipped."""
        if t.tzinfo is None:
            raise ValueError("ledger times must be timezone-aware")
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return 0
        count = 0
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["at"])
            except (ValueError, KeyError, TypeError):
                continue
            if at >= t and (number is None or entry.get("number") == number):
                count += 1
        return count


def check_dial(number: str, policy: PolicySettings, ledger: DialLedger, now: datetime | None = None) -> None:
    """Raise PolicyRefusal unless `number` (E.164) may be dialled now; never touches a line."""
    now = now or datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("check_dial needs a timezone-aware time")
    if not isinstance(number, str) or not E164.match(number):
        raise PolicyRefusal(f"{number!r} is not an E.164 number", "invalid")
    if emergency_service(number) and not policy.allow_emergency:
        raise PolicyRefusal(f"{number} is an emergency number; cellcall never dials it (policy.allow_emergency)", "emergency")
    label = premium_range(number)
    if label and not policy.allow_premium:
        raise PolicyRefusal(f"{number} is in a premium-rate range ({label}); set policy.allow_premium to dial it", "premium")
    denied = _matching(number, policy.denylist, "denylist")
    if denied:
        raise PolicyRefusal(f"{number} matches the denylist prefix {denied}", "denylist")
    if policy.allowlist and not _matching(number, policy.allowlist, "allowlist"):
        raise PolicyRefusal(f"{number} is not on the allowlist", "allowlist")
    _check_rate(policy, ledger, now)
    _check_quiet_hours(policy, now)


def _matching(number: str, prefixes: list[str], name: str) -> str | None:
    for prefix in prefixes:
        cleaned = prefix.replace(" ", "")
        if not _PREFIX.match(cleaned):
            raise PolicyRefusal(f"policy.{name} entry {prefix!r} is not an E.164 prefix like +1415", "config")
        if number.startswith(cleaned):
            return cleaned
    return None


def _check_rate(policy: PolicySettings, ledger: DialLedger, now: datetime) -> None:
    for limit, window, name in (
        (policy.max_calls_per_hour, timedelta(hours=1), "hour"),
        (policy.max_calls_per_day, timedelta(days=1), "day"),
    ):
        if limit < 0:
            raise PolicyRefusal(f"policy.max_calls_per_{name} must be 0 or more, got {limit}", "config")
        made = ledger.count_since(now - window)
        if made >= limit:
            raise PolicyRefusal(f"{made} calls in the last {name} reach policy.max_calls_per_{name} = {limit}", "rate")


def quiet_window(spec: str) -> tuple[time, time] | None:
    """Parse "21:00-08:00" into (start, end); None for an empty spec; PolicyRefusal if malformed."""
    if not spec.strip():
        return None
    match = _QUIET.match(spec)
    if not match:
        raise PolicyRefusal(f"policy.quiet_hours {spec!r} must look like 21:00-08:00", "config")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return time(h1, m1), time(h2, m2)


def policy_zone(name: str) -> tzinfo:
    """The configured IANA zone, or the machine's local zone when empty."""
    if not name:
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PolicyRefusal(f"policy.timezone {name!r} is not an IANA zone name like Europe/Berlin", "config") from None


def _check_quiet_hours(policy: PolicySettings, now: datetime) -> None:
    window = quiet_window(policy.quiet_hours)
    if window is None:
        return
    start, end = window
    local = now.astimezone(policy_zone(policy.timezone)).time().replace(tzinfo=None)
    inside = start <= local < end if start <= end else (local >= start or local < end)
    if inside:
        raise PolicyRefusal(
            f"{local:%H:%M} is inside quiet hours {policy.quiet_hours} ({policy.timezone or 'local time'})", "quiet-hours"
        )
