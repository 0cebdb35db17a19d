"""E.164 normalisation: national and international forms, clear errors, and fuzzing for clean failures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cellcall.phone import E164, normalize_number, split_e164
from cellcall.policy import emergency_service


@pytest.mark.parametrize(
    ("raw", "country", "e164"),
    [("+1 (415) 555-0132", "US", "+14155550132"), ("415.555.0132", "US", "+14155550132"), ("1-415-555-0132", "US", "+14155550132"),
     ("020 7946 0018", "GB", "+442079460018"), ("+44 20 7946 0018", "US", "+442079460018"), ("030 901820", "DE", "+4930901820"),
     ("(02) 9123 4567", "au", "+61291234567"), ("911", "US", "+1911"), ("999", "GB", "+44999"), ("112", "FR", "+33112")],
)  # fmt: skip
def test_normalize(raw: str, country: str, e164: str) -> None:
    assert normalize_number(raw, country) == e164


@pytest.mark.parametrize(
    ("raw", "message"),
    [("", "empty"), ("   ", "empty"), ("call me", "not a phone number"), ("+1 415 555 0132 ext 5", "not a phone number"),
     ("1" * 41, "not a phone number"), ("+49 20100000000000", "15 digits"), ("+1 415", "not a valid number"), ("12", "not a valid number"), ("+999 1234567", "not a")],
)  # fmt: skip
def test_bad_numbers_say_why(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_number(raw, "US")


def test_unknown_default_country() -> None:
    with pytest.raises(ValueError, match="unknown country 'XX'"):
        normalize_number("4155550132", "XX")


def test_split_e164() -> None:
    assert split_e164("+14155550132") == (1, "4155550132")
    assert split_e164("+442079460018") == (44, "2079460018")
    assert split_e164("+3531234567") == (353, "1234567")
    with pytest.raises(ValueError, match="E.164"):
        split_e164("14155550132")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="+0123456789 ()-./", max_size=24), st.sampled_from(["US", "GB", "DE", "AU", "JP", "IN"]))
def test_normalize_gives_e164_or_a_clean_value_error(raw: str, country: str) -> None:
    try:
        number = normalize_number(raw, country)
    except ValueError as error:
        assert str(error)
    else:
        assert E164.match(number)
        emergency_service(number)
