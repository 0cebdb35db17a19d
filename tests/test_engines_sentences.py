"""The sentence splitter over token streams, with control tags split across tokens."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from cellcall.engines.sentences import Sentence, SentenceSplitter, split_sentences


def _tokens(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_sentences_are_yielded_as_soon_as_they_are_complete() -> None:
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there") == []
    assert splitter.feed(".") == []  # "3.5" or "Dr." could still follow
    assert splitter.feed(" How") == [Sentence("Hello there.", frozenset())]
    assert splitter.feed(" are you?\n") == [Sentence("How are you?", frozenset())]
    assert splitter.close() == []


def test_tags_split_across_tokens_are_removed_and_attached() -> None:
    tokens = ["Thanks", " for", " your help", "!", " Good", "bye. [HANG", "UP]"]
    assert list(split_sentences(tokens)) == [
        Sentence("Thanks for your help!", frozenset()),
        Sentence("Goodbye.", frozenset()),
        Sentence("", frozenset({"HANGUP"})),
    ]


def test_a_tag_inside_a_sentence_rides_with_it_and_variants_are_understood() -> None:
    tokens = ["Great", ", Friday at nine", " works [objective_", "met]", " for us. ", "[Voice", "mail] hi"]
    assert list(split_sentences(tokens)) == [
        Sentence("Great, Friday at nine works for us.", frozenset({"OBJECTIVE_MET"})),
        Sentence("hi", frozenset({"VOICEMAIL"})),
    ]


def test_brackets_that_are_not_tags_are_spoken() -> None:
    assert [s.text for s in split_sentences(["I have [three", "] items. [Note] done"])] == [
        "I have [three] items.",
        "[Note] done",
    ]


def test_abbreviations_initials_and_decimals_do_not_end_a_sentence() -> None:
    text = "Dr. Smith sees J. Doe at 3.5 p.m. tomorrow. Bye now."
    assert [s.text for s in split_sentences(_tokens(text, 3))] == ["Dr. Smith sees J. Doe at 3.5 p.m. tomorrow.", "Bye now."]


def test_a_long_first_sentence_is_cut_at_a_comma_to_start_speech_sooner() -> None:
    text = "Well, I checked the calendar for next week and the week after, and Friday morning at nine is open."
    out = [s.text for s in split_sentences(_tokens(text, 4))]
    assert out[0].endswith(",") and 12 <= len(out[0]) <= 70
    assert " ".join(out) == text
    later = [s.text for s in split_sentences(_tokens("Ok. " + text, 4))]
    assert later == ["Ok.", text]  # only the first sentence is cut


@settings(max_examples=400)
@given(
    st.lists(
        st.sampled_from(["Hi", " there", ".", " ", ",", "[HANG", "UP]", "[OBJECTIVE_MET]", " ok", "!", "\n", "[", "x]"]),
        max_size=40,
    )
)
def test_no_text_is_lost_and_no_tag_is_ever_spoken(tokens: list[str]) -> None:
    sentences = list(split_sentences(tokens))
    spoken = " ".join(s.text for s in sentences)
    assert re.search(r"\[\s*HANG\s*UP\s*\]|OBJECTIVE_MET", spoken) is None
    for word in ("Hi", "there", "ok"):
        assert spoken.count(word) == "".join(tokens).count(word)
    other_tags_lifted = "".join(tokens).replace("[OBJECTIVE_MET]", " ")
    said_hangup = re.search(r"\[\s*HANG\s*UP\s*\]", other_tags_lifted) is not None  # "[HANG UP]" counts too
    assert said_hangup == any("HANGUP" in s.tags for s in sentences)
