"""Rendering reports from the plain data model: markdown parses, frontmatter round-trips, hostile text is inert."""

from __future__ import annotations

from datetime import UTC, datetime

import frontmatter
import pytest
from markdown_it import MarkdownIt

from cellcall.outbox import escape_md, render_latency, render_report, render_transcript
from cellcall.record import CallRecord, CallStatus, Direction, Evidence, Fact, ObjectiveMet, Speaker, Turn, TurnLatency

HOSTILE = [
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>",
    "# I am a heading",
    "[click me](http://evil.example/) ![img](http://evil.example/i.png)",
    "`code` and ```fence```",
    "| col | col |",
    "- a list item",
    "1. numbered",
    "> quoted",
    "**bold** _it_ ~~strike~~",
    "&amp; &lt;b&gt;",
    "line one\n\n## line two\n---\n",
    "<!-- comment --> <http://evil.example>",
    "\\ back \\slash",
    "right-to-left \u202eoverride",
    "---\nstatus: completed\n---",
]
MD = MarkdownIt("commonmark").enable("table")


def hostile_record(text: str, status: CallStatus = CallStatus.COMPLETED) -> CallRecord:
    return CallRecord(
        call_id="20261125-170102-dentist",
        goal=f"dentist {text}",
        number="+14155550132",
        direction=Direction.OUTBOUND,
        status=status,
        started=datetime(2026, 11, 25, 17, 1, 2, tzinfo=UTC),
        objective=f"objective {text}",
        objective_met=ObjectiveMet.NO,
        duration_s=42.0,
        hangup_reason=f"remote hang-up {text}",
        summary=f"summary {text}",
        outcome=f"outcome {text}",
        objective_evidence=[Evidence(2, text)],
        facts=[Fact(text, 2, text), Fact("Friday 10 am works")],
        next_steps=[text],
        turns=[
            Turn(0, Speaker.SYSTEM, "answered", 0.0),
            Turn(1, Speaker.AGENT, "Hello, this is Alex.", 0.4),
            Turn(2, Speaker.CALLER, text, 2.5),
            Turn(3, Speaker.AGENT, f"You said {text}", 4.0, barged_in=True, spoken_text="You said"),
        ],
        latency=[
            TurnLatency(1, 310.0, 620.0, 820.0, 990.0, 1150.0, 1300.0, 1460.0),
            TurnLatency(2, 290.0, 580.0, 790.0, None, None, None, None, 140.0),
        ],
        tags=["demo"],
    )


def plain_text(markdown: str) -> str:
    """The visible text of rendered markdown (what a reader sees), joined."""
    out = []
    for token in MD.parse(markdown):
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                out.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                out.append(" ")
    return "".join(out)


def unsafe_tokens(markdown: str) -> list[str]:
    kinds = []
    for token in MD.parse(markdown):
        kinds.append(token.type)
        kinds.extend(child.type for child in token.children or [])
    return [
        k
        for k in kinds
        if k in ("html_inline", "html_block", "image", "code_inline", "code_block", "blockquote_open", "hr", "s_open")
    ]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_inert_and_kept_word_for_word(text: str) -> None:
    record = hostile_record(text)
    flat = " ".join(text.replace("\u202e", "").split())
    body = frontmatter.loads(render_report(record)).content
    for rendered in (render_transcript(record), body, render_latency(record)):
        assert unsafe_tokens(rendered) == []
        html_out = MD.render(rendered)
        assert "<script" not in html_out and "<img" not in html_out and 'evil.example/"' not in html_out
    transcript = render_transcript(record)
    assert flat in plain_text(transcript)
    headings = [t.tag for t in MD.parse(transcript) if t.type == "heading_open"]
    assert headings == ["h1"]  # only the transcript's own title
    assert flat in plain_text(body)
    links = [c.attrGet("href") for t in MD.parse(body) for c in t.children or [] if c.type == "link_open"]
    assert links == ["transcript.md", "latency.md", "call.json"]


@pytest.mark.parametrize("text", HOSTILE)
def test_report_frontmatter_round_trips(text: str) -> None:
    record = hostile_record(text)
    post = frontmatter.loads(render_report(record))
    assert post.metadata["call_id"] == record.call_id
    assert post.metadata["goal"] == record.goal
    assert post.metadata["hangup_reason"] == record.hangup_reason
    assert post.metadata["status"] == "completed" and post.metadata["objective_met"] == "no"
    assert post.metadata["number"] == "+14155550132" and post.metadata["direction"] == "outbound"
    assert post.metadata["started"] == "2026-11-25T17:01:02+00:00" and post.metadata["duration_s"] == 42.0
    assert post.metadata["turns"] == 3
    assert post.metadata["latency_p50_ms"] == {
        "stt": 600.0,
        "llm_first_token": 805.0,
        "tts_first_audio": 1150.0,
        "first_audio": 1300.0,
        "voice_to_voice": 1460.0,
    }
    assert post.content.startswith("# Call: dentist")
    for section in ("## Summary", "## Outcome", "## Facts learned", "## Next steps", "## Files"):
        assert section in post.content


def test_refused_report_needs_no_turns() -> None:
    record = CallRecord(
        call_id="refused-1",
        goal="emergency",
        number="+1911",
        direction=Direction.OUTBOUND,
        status=CallStatus.REFUSED,
        started=datetime(2026, 11, 25, 17, 0, tzinfo=UTC),
        hangup_reason="policy: +1911 is an emergency number",
    )
    report = render_report(record)
    post = frontmatter.loads(report)
    assert post.metadata["status"] == "refused" and post.metadata["turns"] == 0 and post.metadata["latency_p50_ms"] == {}
    assert "- Ended by: policy: +1911 is an emergency number" in report
    assert "None recorded." in post.content
    assert "No agent replies were timed" in render_latency(record)
    assert MD.parse(render_transcript(record))


def test_latency_table_stats_and_chart() -> None:
    latency = render_latency(hostile_record("x"))
    rows = [line for line in latency.splitlines() if line.startswith("|")]
    assert rows[0].startswith("| Reply | Endpoint | STT | LLM first token")
    assert rows[2] == "| 1 | 310 | 620 | 820 | 990 | 1150 | 1300 | 1460 | — |"
    assert rows[4] == "| **p50** | 300 | 600 | 805 | 990 | 1150 | 1300 | 1460 | 140 |"
    assert rows[5] == "| **p90** | 308 | 616 | 817 | 990 | 1150 | 1300 | 1460 | 140 |"
    assert rows[6].startswith("| **mean** | 300 | 600 | 805 |")
    tables = [t for t in MD.parse(latency) if t.type == "table_open"]
    assert len(tables) == 1
    fences = [t for t in MD.parse(latency) if t.type == "fence"]
    assert [f.info for f in fences] == ["mermaid"]
    chart = fences[0].content.splitlines()
    assert chart[0] == "xychart-beta" and 'x-axis "reply" ["1", "2"]' in fences[0].content
    assert "    bar [1300, 0]" in chart and "    line [1460, 0]" in chart and 'y-axis "ms" 0 --> 1500' in fences[0].content


def test_transcript_marks_barge_in_and_times() -> None:
    transcript = render_transcript(hostile_record("fine"))
    assert "**[00:04.0] Agent (interrupted by the caller):** You said _(planned: You said fine)_" in transcript
    assert "**[00:02.5] Caller:** fine" in transcript
    assert "_[00:00.0] answered_" in transcript


@pytest.mark.parametrize(
    ("text", "escaped"),
    [("- item", "\\- item"), ("3. x", "3\\. x"), ("+14155550132", "+14155550132"), ("a|b", "a\\|b"), ("<b>", "&lt;b&gt;"),
     ("x\n# y", "x \\# y"), ("a\u202eb\u200bc", "abc"), ("tab\there\x07", "tab here")],
)  # fmt: skip
def test_escape_md_cases(text: str, escaped: str) -> None:
    assert escape_md(text) == escaped
