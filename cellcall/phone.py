"""Phone numbers as E.164 strings: the one form the policy, the line and the reports agree on.

Parsing and validation use phonenumbers (Google's libphonenumber metadata). Short emergency
numbers are kept as `+<country code><digits>` (for example `+1911`) rather than rejected, so the
dialling policy can refuse them by name instead of the user seeing a vague "invalid number".
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import shortnumberinfo

E164 = re.compile(r"^\+[1-9]\d{2,14}$")
_ALLOWED = re.compile(r"^\+?[0-9 ().\-/]+$")
MAX_RAW = 40


def country_code_for(region: str) -> int:
    """The calling code of an ISO 3166 region ("US" -> 1); ValueError for an unknown region."""
    code = phonenumbers.country_code_for_region(region.upper())
    if not code:
        raise ValueError(f"unknown country {region!r}: use a two-letter ISO code such as US, GB or DE")
    return code


def normalize_number(raw: str, default_country: str) -> str:
    """E.164 form of `raw`, read in `default_country` when it has no +country; ValueError if not a number."""
    if not isinstance(raw, str):
        raise ValueError(f"phone number must be text, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise ValueError("phone number is empty")
    if len(text) > MAX_RAW or not _ALLOWED.match(text):
        raise ValueError(f"{_shown(text)} is not a phone number: use digits, optionally starting with +country")
    region = default_country.upper()
    code = country_code_for(region)
    digits = re.sub(r"\D", "", text)
    if not text.startswith("+") and shortnumberinfo.is_emergency_number(digits, region):
        return f"+{code}{digits}"
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{_shown(text)} is not a phone number: {exc._msg}") from None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not E164.match(e164):
        raise ValueError(f"{_shown(text)} is longer than an international number can be (15 digits)")
    if is_emergency(e164):
        return e164
    if not phonenumbers.is_valid_number(parsed):
        where = phonenumbers.region_code_for_number(parsed) or f"+{parsed.country_code}"
        raise ValueError(f"{_shown(text)} is not a valid number for {where} (read as {e164})")
    return e164


def split_e164(number: str) -> tuple[int, str]:
    """(country calling code, national digits) of an E.164 string; ValueError if it is not E.164."""
    if not E164.match(number):
        raise ValueError(f"{_shown(number)} is not in E.164 form (+ then country code and digits)")
    for length in (1, 2, 3):
        code = int(number[1 : 1 + length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code, number[1 + length :]
    raise ValueError(f"{number} has no known country calling code")


def regions_of(code: int) -> tuple[str, ...]:
    """ISO regions that share a calling code (+1: US, CA and the rest of the NANP)."""
    return tuple(r for r in phonenumbers.region_codes_for_country_code(code) if r != "001")


def is_emergency(number: str) -> bool:
    """True when an E.164 string is an emergency short number in any region of its calling code."""
    try:
        code, national = split_e164(number)
    except ValueError:
        return False
    return any(shortnumberinfo.is_emergency_number(national, region) for region in regions_of(code))


def _shown(text: str) -> str:
    """Untrusted text, shortened and quoted for an error message."""
    return repr(text[:MAX_RAW] + ("..." if len(text) > MAX_RAW else ""))
