"""Reports the runner writes itself, for calls no voice loop finished: missed inbound calls, and
calls cut short when a runner died (the next start reports them as interrupted).

An interrupted call keeps what was said: its transcript.md was appended turn by turn while the
call ran, so the turns are read back from it before the final reports are rendered.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from cellcall.goal import Goal
from cellcall.outbox import CALL_JSON, LATENCY_JSONL, TRANSCRIPT, CallOutbox, read_record
from cellcall.record import CallRecord, CallStatus, Direction, Speaker, Turn, TurnLatency
from cellcall.watch.eventlog import EventLog
from cellcall.watch.inbox import Claim

# One appended turn, as templates/transcript_lines.md.j2 writes it (a round-trip test guards this).
_TURN = re.compile(
    r"^(?:\*\*\[(?P<clock>\d+:\d+(?:\.\d+)?)\] (?P<who>Agent|Caller)(?P<cut> \(interrupted by the caller\))?:\*\* (?P<text>.*?)"
    r"(?: _\(planned: (?P<planned>.*)\)_)?"
    r"|_\[(?P<sclock>\d+:\d+(?:\.\d+)?)\] (?P<system>.*)_)$"
)
_ESCAPED = re.compile(r"\\(.)")


def _unescape(text: str) -> str:
    """Undo outbox.escape_md (backslash escapes, then HTML entities) for a transcript line."""
    return _ESCAPED.sub(r"\1", html.unescape(text))


def _seconds(clock: str) -> float:
    minutes, _, seconds = clock.partition(":")
    return int(minutes) * 60 + float(seconds)


def transcript_turns(text: str) -> list[Turn]:
    """The turns recorded in a transcript.md, in order (header lines and blanks skipped)."""
    turns: list[Turn] = []
    for line in text.splitlines():
        match = _TURN.match(line.strip())
        if match is None:
            continue
        if match["system"] is not None:
            turns.append(Turn(len(turns), Speaker.SYSTEM, _unescape(match["system"]), _seconds(match["sclock"])))
            continue
        spoken = _unescape(match["text"])
        cut = match["cut"] is not None
        planned = _unescape(match["planned"]) if match["planned"] is not None else spoken
        speaker = Speaker.AGENT if match["who"] == "Agent" else Speaker.CALLER
        turns.append(
            Turn(
                len(turns),
                speaker,
                planned if cut else spoken,
                _seconds(match["clock"]),
                barged_in=cut,
                spoken_text=spoken if cut else None,
            )
        )
    return turns


def _latencies(folder: Path) -> list[TurnLatency]:
    rows = []
    try:
        lines = (folder / LATENCY_JSONL).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    fields = set(TurnLatency.__dataclass_fields__)
    for line in lines:
        try:
            data = json.loads(line)
            rows.append(TurnLatency(**{k: v for k, v in data.items() if k in fields}))
        except (ValueError, TypeError):
            continue  # the line the crash tore
    return rows


def _record_for(goal: Goal | None, claim: Claim, status: CallStatus) -> CallRecord:
    return CallRecord.new(
        goal.name if goal else Path(claim.source_name).stem,
        goal.number if goal else claim.state.get("number"),
        Direction.OUTBOUND,
        status,
        goal_path=str(claim.goal_file),
        objective=goal.objective if goal else "",
        tags=list(goal.tags) if goal else [],
    )


def interrupted(outbox_root: Path, claim: Claim, goal: Goal | None, log: EventLog) -> tuple[Path, Path]:
    """Finalize the call a dead runner left behind as `interrupted`; (folder, report path)."""
    owner = claim.state.get("owner") or {}
    note = f"the runner (pid {owner.get('pid', '?')}) stopped during the call; it is not redialled"
    folder = Path(claim.outbox) if claim.outbox else None
    if folder is not None and (folder / CALL_JSON).is_file():
        try:
            record = read_record(folder / CALL_JSON)
        except (ValueError, KeyError, TypeError) as exc:
            log.emit("interrupted-record-unreadable", folder=str(folder), error=str(exc))
            record = _record_for(goal, claim, CallStatus.INTERRUPTED)
        outbox = CallOutbox(folder)
        transcript = folder / TRANSCRIPT
        record.turns = transcript_turns(transcript.read_text(encoding="utf-8")) if transcript.is_file() else []
        record.latency = _latencies(folder)
    else:
        record = _record_for(goal, claim, CallStatus.INTERRUPTED)
        outbox = CallOutbox.create(outbox_root, record)
    last_at = record.turns[-1].at_s if record.turns else 0.0
    record.turns.append(Turn(len(record.turns), Speaker.SYSTEM, f"Call interrupted: {note}.", last_at))
    record.status = CallStatus.INTERRUPTED
    record.hangup_reason = "interrupted: runner stopped"
    record.error = note
    record.duration_s = max(record.duration_s, last_at)
    report = outbox.finalize(record)
    return outbox.path, report


def missed(outbox_root: Path, number: str | None, reason: str, goal_name: str = "inbound") -> Path:
    """A missed inbound call (or one rejected by the caller lists) as its own outbox folder."""
    record = CallRecord.new(
        goal_name,
        number,
        Direction.INBOUND,
        CallStatus.NO_ANSWER,
        hangup_reason=reason,
        summary=f"Missed call from {number or 'a withheld number'}.",
        outcome=reason,
    )
    outbox = CallOutbox.create(outbox_root, record)
    outbox.finalize(record)
    return outbox.path
