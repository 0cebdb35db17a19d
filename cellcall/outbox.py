"""One folder per call in outbox/: transcript, latency, report, call.json and audio, written safely.

Transcript and latency lines are appended as the call goes, so a crash keeps what was said; the
call folder starts with a call.json of status `interrupted` for the same reason. `finalize` writes
every file again from the plain CallRecord, atomically, so running it twice changes nothing.
Everything the caller said (and everything a model wrote from it) is untrusted text: it passes
through `escape_md` so that it renders as the words, never as markup.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cellcall.files import atomic_write, replacing
from cellcall.names import safe_name
from cellcall.record import CallRecord, CallStatus, Direction, Evidence, Fact, ObjectiveMet, Speaker, Turn, TurnLatency
from cellcall.templating import escape_md, render_template, template_macros
from cellcall.trace import summarize
from cellcall.voice.audio import samples, write_wav

TRANSCRIPT_LINES = "transcript_lines.md.j2"
REPORT, TRANSCRIPT, LATENCY, CALL_JSON, LATENCY_JSONL, AUDIO = (
    "report.md", "transcript.md", "latency.md", "call.json", "latency.jsonl", "audio.wav",
)  # fmt: skip
SPAN_LABELS = {
    "endpoint_ms": "Endpoint",
    "stt_ms": "STT",
    "llm_first_token_ms": "LLM first token",
    "llm_first_sentence_ms": "LLM first sentence",
    "tts_first_audio_ms": "TTS first audio",
    "first_audio_ms": "Time to first audio",
    "voice_to_voice_ms": "Voice to voice",
    "barge_in_stop_ms": "Barge-in stop",
}
CHART_SPANS = ("first_audio_ms", "voice_to_voice_ms")
P50_KEYS = ("stt_ms", "llm_first_token_ms", "tts_first_audio_ms", "first_audio_ms", "voice_to_voice_ms")
MAX_UNIQUE = 100


class CallLookupError(LookupError):
    """No call, or more than one, matches what the user asked for; the message says which."""


def latency_p50s(record: CallRecord) -> dict[str, float]:
    """Median of the headline spans, in ms, for the report's frontmatter."""
    stats = summarize(record.latency)
    return {key.removesuffix("_ms"): round(stats[key].p50, 1) for key in P50_KEYS if key in stats}


def report_frontmatter(record: CallRecord) -> dict[str, Any]:
    """The machine-readable head of report.md (plain YAML types, so any reader round-trips it)."""
    meta: dict[str, Any] = {
        "call_id": record.call_id,
        "goal": record.goal,
        "number": record.number,
        "direction": record.direction.value,
        "status": record.status.value,
        "objective_met": record.objective_met.value,
        "started": record.started.isoformat(),
        "duration_s": round(record.duration_s, 1),
        "turns": sum(1 for turn in record.turns if turn.speaker is not Speaker.SYSTEM),
        "hangup_reason": record.hangup_reason,
        **({"answered_by": record.answered_by} if record.answered_by else {}),
        **({"dtmf_sent": list(record.dtmf_sent)} if record.dtmf_sent else {}),
        "latency_p50_ms": latency_p50s(record),
        "tags": list(record.tags),
    }
    if record.error:
        meta["error"] = record.error
    return meta


def render_report(record: CallRecord, has_audio: bool = False) -> str:
    """report.md: YAML frontmatter, then summary, outcome, facts, next steps and links."""
    frontmatter = yaml.safe_dump(report_frontmatter(record), sort_keys=False, allow_unicode=True).strip()
    direction = "Outbound" if record.direction is Direction.OUTBOUND else "Inbound"
    return render_template(
        REPORT + ".j2",
        record=record,
        frontmatter=frontmatter,
        title=f"Call: {escape_md(record.goal)} ({record.status.value})",
        direction_label=direction,
        started=record.started.isoformat(timespec="seconds"),
        has_audio=has_audio,
    )


def render_transcript(record: CallRecord) -> str:
    """transcript.md: a header, then one paragraph per turn (barge-ins marked)."""
    return render_template(TRANSCRIPT + ".j2", record=record)


def render_latency(record: CallRecord) -> str:
    """latency.md: per-reply table, p50/p90/mean rows and a mermaid xychart GitHub renders."""
    stats = {name: dataclasses.asdict(value) for name, value in summarize(record.latency).items()}
    spans = [name for name in SPAN_LABELS if name in stats] or list(TurnLatency.SPANS)
    chart = [name for name in CHART_SPANS if name in stats]
    peak = max((getattr(row, name) or 0 for row in record.latency for name in chart), default=0)
    legend = "; ".join(f"{'bars' if i == 0 else 'line'}: {SPAN_LABELS[name].lower()}" for i, name in enumerate(chart))
    return render_template(
        LATENCY + ".j2",
        record=record,
        labels=[SPAN_LABELS[name] for name in spans],
        spans=spans,
        stats=stats,
        chart_spans=chart or ["first_audio_ms"],
        chart_max=int(max(1000, -(-peak // 500) * 500)),
        chart_legend=f"Chart {legend} (0 = not reached)." if legend else "No reply reached first audio.",
    )


def _turn_markdown(turn: Turn) -> str:
    return template_macros(TRANSCRIPT_LINES).turn_line(turn)


def _header_markdown(record: CallRecord) -> str:
    return template_macros(TRANSCRIPT_LINES).header(record)


def _append(path: Path, text: str) -> None:
    """Append and flush to the OS: a crashed process keeps every line written so far."""
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()


@dataclasses.dataclass
class CallOutbox:
    """The folder of one call; create it when the call starts, finalize it when the call ends."""

    path: Path

    @classmethod
    def create(cls, root: Path, record: CallRecord) -> CallOutbox:
        """A new folder root/YYYY-MM-DD/HHMMSS-<goal>/ (suffixed -2, -3... if taken); never outside root."""
        day = Path(root) / record.started.strftime("%Y-%m-%d")
        day.mkdir(parents=True, exist_ok=True)
        base = f"{record.started:%H%M%S}-{safe_name(record.goal)}"
        for attempt in range(1, MAX_UNIQUE + 1):
            folder = day / (base if attempt == 1 else f"{base}-{attempt}")
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            outbox = cls(folder)
            atomic_write(folder / CALL_JSON, _json(dataclasses.replace(record, status=CallStatus.INTERRUPTED)))
            atomic_write(folder / TRANSCRIPT, _header_markdown(record) + "\n")
            return outbox
        raise FileExistsError(f"{day}: more than {MAX_UNIQUE} calls named {base}")

    def append_turn(self, turn: Turn) -> None:
        _append(self.path / TRANSCRIPT, "\n" + _turn_markdown(turn) + "\n")

    def append_latency(self, latency: TurnLatency) -> None:
        _append(self.path / LATENCY_JSONL, json.dumps(dataclasses.asdict(latency)) + "\n")

    def write_audio(self, caller: bytes, agent: bytes, sample_rate: int) -> None:
        """audio.wav: caller on the left channel, agent on the right; the shorter track is padded."""
        if sample_rate <= 0:
            raise ValueError(f"sample_rate must be positive, got {sample_rate}")
        if len(caller) % 2 or len(agent) % 2:
            raise ValueError("PCM tracks must be whole 16-bit samples (an even number of bytes)")
        left, right = samples(caller), samples(agent)
        stereo = np.zeros((max(left.size, right.size), 2), dtype="<i2")
        stereo[: left.size, 0] = left
        stereo[: right.size, 1] = right
        with replacing(self.path / AUDIO) as tmp:
            write_wav(tmp, stereo.tobytes(), sample_rate, channels=2)

    def finalize(self, record: CallRecord) -> Path:
        """Write report.md, transcript.md, latency.md, latency.jsonl and call.json; safe to repeat."""
        atomic_write(self.path / TRANSCRIPT, render_transcript(record))
        atomic_write(self.path / LATENCY, render_latency(record))
        atomic_write(self.path / LATENCY_JSONL, "".join(json.dumps(dataclasses.asdict(row)) + "\n" for row in record.latency))
        atomic_write(self.path / CALL_JSON, _json(record))
        report = self.path / REPORT
        atomic_write(report, render_report(record, has_audio=(self.path / AUDIO).exists()))
        return report


def _json(record: CallRecord) -> str:
    return json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n"


def read_record(path: Path) -> CallRecord:
    """A CallRecord from call.json (unknown keys ignored, so older readers survive newer fields)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a call record")
    known = {f.name for f in dataclasses.fields(CallRecord)}
    values = {key: value for key, value in data.items() if key in known}
    values.update(
        direction=Direction(data["direction"]),
        status=CallStatus(data["status"]),
        objective_met=ObjectiveMet(data.get("objective_met", "unknown")),
        started=datetime.fromisoformat(data["started"]),
        turns=[_from_json(Turn, {**row, "speaker": Speaker(row["speaker"])}) for row in data.get("turns", [])],
        latency=[_from_json(TurnLatency, row) for row in data.get("latency", [])],
        objective_evidence=[_from_json(Evidence, row) for row in data.get("objective_evidence") or []],
        facts=[_fact(item) for item in data.get("facts") or []],
    )
    return CallRecord(**values)


def _fact(item: Any) -> Fact:
    """A fact from call.json; reports written before facts were quoted hold plain strings."""
    return _from_json(Fact, item) if isinstance(item, dict) else Fact(str(item))


def _from_json(cls: type, row: dict[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in row.items() if key in names})


def _call_folders(root: Path) -> list[Path]:
    """Call folders, newest first (folder names sort by time)."""
    return sorted((p.parent for p in Path(root).glob("*/*/" + CALL_JSON)), key=lambda p: (p.parent.name, p.name), reverse=True)


def _try_read(folder: Path) -> CallRecord | None:
    try:
        return read_record(folder / CALL_JSON)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def list_calls(root: Path, limit: int = 20) -> list[CallRecord]:
    """The newest `limit` calls that have a readable call.json; each gets extra["folder"]."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    calls: list[CallRecord] = []
    for folder in _call_folders(root):
        record = _try_read(folder)
        if record is not None:
            record.extra["folder"] = str(folder)
            calls.append(record)
            if len(calls) == limit:
                break
    return calls


def find_call(root: Path, id_or_path: str) -> Path:
    """The folder of one call, by path, folder name, call id, or a unique prefix of either."""
    given = Path(id_or_path)
    if given.exists():
        folder = given if given.is_dir() else given.parent
        if (folder / CALL_JSON).is_file() or (folder / REPORT).is_file():
            return folder
        raise CallLookupError(f"{id_or_path} is not a call folder (no {CALL_JSON} or {REPORT} in it)")
    folders = _call_folders(root)
    names = {folder: (folder.name, getattr(_try_read(folder), "call_id", None)) for folder in folders}
    exact = [folder for folder, keys in names.items() if id_or_path in keys]
    matches = exact or [folder for folder, keys in names.items() if any(k and k.startswith(id_or_path) for k in keys)]
    if not id_or_path or not matches:
        raise CallLookupError(f"no call matches {id_or_path!r} in {root} (see `cellcall calls`)")
    if len(matches) > 1:
        shown = ", ".join(f"{f.parent.name}/{f.name}" for f in matches[:5])
        raise CallLookupError(f"{id_or_path!r} matches {len(matches)} calls ({shown}); give more of the id")
    return matches[0]


def report_text(root: Path, id_or_path: str) -> str:
    """report.md of one call, for `cellcall show`; CallLookupError when there is none yet."""
    folder = find_call(root, id_or_path)
    try:
        return (folder / REPORT).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CallLookupError(
            f"{folder} has no {REPORT} yet (the call is running or ended abruptly); see its {TRANSCRIPT}"
        ) from None
