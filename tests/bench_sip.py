"""Benchmark: whole calls over SIP on the loopback rig vs the modem emulator, with the real models.

    .venv/bin/python tests/bench_sip.py --calls 2 [--write docs/benchmarks.md]

kamailio and the far-end UA (tests/sip_rig.py) run on loopback; the far end speaks three Piper
lines 14 s apart and reports when each ended and when it heard the agent start (its clock, the
same host's monotonic clock as the emulator's far end). RTP send intervals are the kernel's receive
timestamps of our RTP packets on `lo` (AF_PACKET, needs root), and, separately, the intervals at
which the media pump handed frames to the stack. One emulator call (`dentist`) runs after the SIP
calls in the same process for the comparison; the load average is printed with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from sip_rig import USERS, FarEnd, Kamailio, free_udp_port  # noqa: E402
from speech import piper  # noqa: E402

from cellcall.bench.calls import run_scenario  # noqa: E402
from cellcall.bench.load import load_text  # noqa: E402
from cellcall.bench.report import write_section  # noqa: E402
from cellcall.call import place_call  # noqa: E402
from cellcall.config import Settings  # noqa: E402
from cellcall.engines.cache import shared_engines  # noqa: E402
from cellcall.goal import load_goal  # noqa: E402
from cellcall.line.sip import SipLine, sip_options  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DENTIST = ROOT / "goals" / "examples" / "dentist.md"
LINES = (
    "Good morning, Bright Smile Dental, this is Maria speaking. How can I help you today?",
    "Sure, I can help with that. What day would work best for you?",
    "Thursday at ten is open. Shall I put you down for that?",
)
OUR_RTP = (38000, 38040)
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
ETH_P_ALL = 0x0003


class RtpCapture:
    """Kernel receive timestamps of UDP packets from our RTP ports on the loopback interface."""

    def __init__(self, ports: tuple[int, int]) -> None:
        self.ports, self._stop = ports, threading.Event()
        self.times: list[float] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.bind(("lo", 0))
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, name="rtp-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, ancillary, _, address = self._sock.recvmsg(2048, 64)
            except TimeoutError:
                continue
            if address[2] != socket.PACKET_HOST or len(data) < 14 + 20 + 8 or data[12:14] != b"\x08\x00":
                continue
            ihl = (data[14] & 0x0F) * 4
            if data[23] != 17:  # UDP
                continue
            src_port = struct.unpack("!H", data[14 + ihl : 16 + ihl])[0]
            if self.ports[0] <= src_port <= self.ports[1] and src_port % 2 == 0:
                for level, kind, value in ancillary:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                        sec, nsec = struct.unpack("qq", value[:16])
                        self.times.append(sec + nsec / 1e9)

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()
        return [(b - a) * 1000 for a, b in zip(self.times, self.times[1:], strict=False)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def speech_wavs(folder: Path) -> str:
    paths = []
    for index, text in enumerate(LINES):
        path = folder / f"line{index}.wav"
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(piper().render(text))
        paths.append(str(path))
    return ",".join(paths)


def voice_to_voice(events: list[dict[str, object]]) -> list[float]:
    """End of each far-end line -> the first agent onset the far end heard after it (before its next line)."""
    spans = [(float(e["start"]), float(e["end"])) for e in events if e["event"] == "utterance"]  # type: ignore[arg-type]
    onsets = [float(e["at"]) for e in events if e["event"] == "voice-onset"]  # type: ignore[arg-type]
    out = []
    for index, (_, end) in enumerate(spans):
        limit = spans[index + 1][0] if index + 1 < len(spans) else float("inf")
        after = [o for o in onsets if end < o < limit]
        if after:
            out.append((after[0] - end) * 1000)
    return out


def sip_call(settings: Settings, rig: Kamailio, wavs: str) -> tuple[list[float], list[float], str]:
    far = FarEnd(rig, "--listen", str(free_udp_port()), "--rtp", "38200", "--play", wavs, "--every", "14", "--hangup-after", "40")
    try:
        far.wait_for("registered", 15)
        line = SipLine(sip_options(settings))
        line.open()
        intervals: list[float] = []
        try:
            watcher = threading.Thread(target=lambda: _keep_intervals(line, intervals), daemon=True)
            watcher.start()
            result = place_call(
                dataclasses.replace(load_goal(DENTIST), number="+14155550132"), settings, line, engines=shared_engines(settings)
            )
        finally:
            line.close()
        far.wait_for("done", 10)
        return voice_to_voice(far.events()), intervals, f"{result.record.status.value} ({result.record.hangup_reason})"
    finally:
        far.stop()


def _keep_intervals(line: SipLine, out: list[float]) -> None:
    """Copy the media pump's hand-off intervals while the call runs (the pump goes away at hang-up)."""
    while line.media is None:
        time.sleep(0.05)
    pump = line.media
    while line.media is pump:
        time.sleep(0.5)
    out.extend(pump.send_intervals_ms())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--write", type=Path, default=None, help="write the figures into this benchmarks.md")
    args = parser.parse_args()
    settings = Settings()
    settings.llm.backend = "embedded"
    settings.llm.threads = settings.stt.threads = 1
    work = Path(tempfile.mkdtemp(prefix="bench-sip-"))
    settings.paths.outbox = str(work / "outbox")
    engines = shared_engines(settings)
    engines.preload()
    engines.stt(), engines.tts(), engines.llm()
    wavs = speech_wavs(work)
    rig = Kamailio(work).start()
    sip_v2v, pump, wire, statuses, loads = [], [], [], [], []
    try:
        sip = dataclasses.replace(settings.sip, domain=rig.domain, username="alice", password=USERS["alice"])
        sip.listen, sip.rtp_ports = f"127.0.0.1:{free_udp_port()}", f"{OUR_RTP[0]}-{OUR_RTP[1]}"
        settings.sip = sip
        for _ in range(args.calls):
            capture = RtpCapture(OUR_RTP) if os.geteuid() == 0 else None
            v2v, intervals, status = sip_call(settings, rig, wavs)
            wire += capture.stop() if capture else []
            sip_v2v += v2v
            pump += intervals
            statuses.append(status)
            loads.append(load_text())
            print(f"SIP call: {status}; voice-to-voice {[round(v) for v in v2v]} ms; {loads[-1]}")
    finally:
        rig.stop()
    emu = run_scenario(DENTIST, settings, "dentist")
    emu_load = load_text()
    print(f"emulator dentist: {emu.status}; voice-to-voice {[round(v) for v in emu.voice_to_voice]} ms; {emu_load}")
    wire = [w for w in wire if w < 1000]  # gaps between calls are not send intervals
    table = "\n".join(
        [
            f"{args.calls} SIP call(s) on loopback (kamailio + a baresip far end speaking 3 Piper lines 14 s apart), "
            "then one emulator `dentist` call, same process and models (STT base x1, LLM qwen2.5-0.5b x1, TTS joe). "
            f"SIP calls: {', '.join(statuses)}. Measured on the shared 2-core box while other work ran; "
            f"load during the SIP calls: {'; '.join(loads)}; during the emulator call: {emu_load}.",
            "",
            "| figure | p50 | p99 / p90 | n |",
            "|---|---|---|---|",
            f"| RTP send interval on the wire (kernel timestamps on lo) | {pct(wire, 0.5):.1f} ms | p99 {pct(wire, 0.99):.1f} ms | {len(wire)} |",
            f"| uplink frame hand-off to the stack (media pump) | {pct(pump, 0.5):.1f} ms | p99 {pct(pump, 0.99):.1f} ms | {len(pump)} |",
            f"| voice-to-voice over SIP (far end's clock) | {pct(sip_v2v, 0.5):.0f} ms | p90 {pct(sip_v2v, 0.9):.0f} ms | {len(sip_v2v)} |",
            f"| voice-to-voice on the modem emulator, dentist (far end's clock) | {pct(emu.voice_to_voice, 0.5):.0f} ms "
            f"| p90 {pct(emu.voice_to_voice, 0.9):.0f} ms | {len(emu.voice_to_voice)} |",
            "",
            "The two far ends differ: the emulator's answers each agent turn, the SIP far end speaks on a fixed "
            "14 s schedule, so its voice-to-voice counts only the agent's first reply after each line. "
            f"Mean SIP voice-to-voice {statistics.fmean(sip_v2v) if sip_v2v else float('nan'):.0f} ms.",
        ]
    )
    print(table)
    if args.write:
        write_section(args.write, "sip", "## SIP line vs the modem emulator\n\n" + table)


if __name__ == "__main__":
    main()
