"""Text normalisation for the phone: what TTS is asked to say."""

from __future__ import annotations

import pytest

from cellcall.engines.speakable import number_words, ordinal_words, speakable, year_words


@pytest.mark.parametrize(
    ("written", "spoken"),
    [
        ("See you at 3:30 pm.", "See you at three thirty p m."),
        ("Open 9am to 5 p.m.", "Open nine a m to five p m."),
        ("The slot is 15:00 or 12:05.", "The slot is three p m or twelve oh five."),
        ("At 7:00.", "At seven o'clock."),
        ("On 2026-11-27.", "On November twenty-seventh, twenty twenty-six."),
        ("Friday Nov 28th, 2026", "Friday November twenty-eighth, twenty twenty-six"),
        ("by Dec. 1", "by December first"),
        ("It is $45.50 or $1,200.", "It is forty-five dollars and fifty cents or one thousand two hundred dollars."),
        ("Just $1 or €0.05", "Just one dollar or five cents"),
        ("Call (415) 555-0132.", "Call four one five, five five five, zero one three two."),
        ("Call +1 415 555 0132", "Call plus one, four one five, five five five, zero one three two"),
        ("Dial 555-0100 now", "Dial five five five, zero one zero zero now"),
        ("+14155550132", "plus one four one five five five five zero one three two"),
        (
            "Ref 1234567 and patient 4471.",
            "Ref one two three four five six seven and patient four thousand four hundred seventy-one.",
        ),
        ("Dr. Smith & Mr. Jones, appt. at St. Mary", "Doctor Smith and Mister Jones, appointment at Street Mary"),
        ("Room #4, **50%** off", "Room number four, fifty percent off"),
        ("the 1st, 2nd, 3rd and 22nd", "the first, second, third and twenty-second"),
        ("version 3.5 works", "version 3.5 works"),
    ],
)
def test_phone_speech(written: str, spoken: str) -> None:
    assert speakable(written) == spoken


def test_number_words() -> None:
    assert number_words(0) == "zero"
    assert number_words(21) == "twenty-one"
    assert number_words(100) == "one hundred"
    assert number_words(1_000_001) == "one million one"
    assert number_words(-7) == "minus seven"
    assert ordinal_words(40) == "fortieth"
    assert ordinal_words(101) == "one hundred first"
    assert (
        year_words(2000) == "two thousand" and year_words(1905) == "nineteen oh five" and year_words(1900) == "nineteen hundred"
    )


def test_impossible_dates_and_times_are_left_alone() -> None:
    assert speakable("2026-13-45") == "2026-13-45"
    assert "25:99" in speakable("at 25:99")
