"""`cellcall bench relay`: what the relay costs and saves, on loopback, with the real models.

One process loads the engines and runs them both directly and behind a RelayServer on 127.0.0.1,
so both paths use the very same models. The protocol's overhead (framing, sockets, threads, the
client's polling) is what the appliance waited beyond the relay's own engine time, which each DONE
carries. "Utterance in to first audio out" is a turn as the voice loop runs it: STT, the LLM's
first sentence, the TTS's first chunk. The appliance's memory is a child process placing a whole
emulated call with every engine on the relay (relay_fallback = "lazy", so it loads no model).
Figures are medians; the load average is printed because the CPU is shared.
No GPU here: GPU figures are not measured (see README "GPU relay").
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cellcall.bench.engines import QUESTIONS, SENTENCES, SYSTEM
from cellcall.bench.load import load_text
from cellcall.bench.report import write_section
from cellcall.config import Settings
from cellcall.engines import ChatMessage, ChatModel, Synthesizer, Transcriber
from cellcall.relay.client import RelayChatModel, RelayPool, RelaySynthesizer, RelayTranscriber
from cellcall.relay.server import RelayServer, load_relay_engines
from cellcall.voice.audio import resample

TOKEN = "bench-relay-token-" + "0" * 16  # loopback only, never a real secret
MAX_TOKENS = 24
_APPLIANCE = """
import json, sys, tempfile
from pathlib import Path
from cellcall.call import place_call
from cellcall.config import Settings
from cellcall.emulator.line import emulated_line
from cellcall.engines.cache import Engines
from cellcall.goal import load_goal
settings = Settings()
settings.engines.relay, settings.engines.relay_fallback, settings.relay.token = sys.argv[1], "lazy", sys.argv[2]
settings.paths.outbox = tempfile.mkdtemp(prefix="bench-relay-")
engines = Engines(settings)
with emulated_line(settings, "dentist", engines) as (line, emulator):  # the far end speaks via the relay too
    result = place_call(load_goal(Path(sys.argv[3])), settings, line, engines=engines)
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line)
peak_mb = int(status["VmHWM"].split()[0]) / 1024  # this process's own peak (ru_maxrss counts the forking parent)
local = [name for name in ("_stt", "_tts", "_llm") if getattr(engines, name)._future is not None]
print(json.dumps({"rss_mb": peak_mb, "served": engines.served_by(), "status": result.record.status.value, "local": local}))
"""


def _first_audio_s(stt: Transcriber, llm: ChatModel, tts: Synthesizer, pcm: bytes, question: str) -> float:
    """Utterance in -> first audio chunk out through these three engines (the turn runs to its end)."""
    started = time.perf_counter()
    heard = stt.transcribe(pcm).text or question
    first = 0.0
    reply = ""
    for token in llm.stream_chat([SYSTEM, ChatMessage("user", heard)], max_tokens=MAX_TOKENS, temperature=0.0):
        reply += token
        if any(mark in token for mark in ".!?") and not first:
            break
    for _chunk in tts.synthesize(reply.strip() or "Okay."):
        first = first or time.perf_counter() - started
    return first


def _whole_turn(stt: Transcriber, llm: ChatModel, tts: Synthesizer, pcm: bytes, question: str) -> None:
    heard = stt.transcribe(pcm).text or question
    reply = "".join(llm.stream_chat([SYSTEM, ChatMessage("user", heard)], max_tokens=MAX_TOKENS, temperature=0.0))
    for _chunk in tts.synthesize(reply.strip() or "Okay."):
        pass


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _appliance_rss(url: str) -> dict:
    goal = Path(__file__).resolve().parents[2] / "goals" / "examples" / "dentist.md"
    command = [sys.executable, "-c", _APPLIANCE, url, TOKEN, str(goal)]
    out = subprocess.run(command, capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise RuntimeError(f"appliance process failed: {out.stderr.strip()[-400:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(settings: Settings, runs: int) -> dict[str, object]:
    relay_settings = Settings()
    relay_settings.stt, relay_settings.tts, relay_settings.llm = settings.stt, settings.tts, settings.llm
    relay_settings.relay.listen, relay_settings.relay.token = "127.0.0.1:0", TOKEN
    engines = load_relay_engines(relay_settings)
    server = RelayServer(relay_settings, engines)
    threading.Thread(target=server.serve_forever, name="bench-relay", daemon=True).start()
    url = f"tcp://127.0.0.1:{server.port}"
    try:
        pool = RelayPool(url, TOKEN, timeout_s=30.0)
        relayed = (
            RelayTranscriber(pool, engines.stt.sample_rate),
            RelayChatModel(pool),
            RelaySynthesizer(pool, engines.tts.sample_rate),
        )
        local = (engines.stt, engines.llm, engines.tts)
        engines.llm.warm([SYSTEM])
        speech = [
            resample(b"".join(engines.tts.synthesize(text)), engines.tts.sample_rate, engines.stt.sample_rate)
            for text in SENTENCES
        ]
        figures: dict[str, list[float]] = {"local": [], "relay": []}
        overheads: list[float] = []
        turn_overhead = [0.0]
        pool.on_done = lambda wall_s, relay_s: turn_overhead.__setitem__(0, turn_overhead[0] + wall_s - relay_s)
        for i in range(runs):
            pcm, question = speech[i % len(speech)], QUESTIONS[i % len(QUESTIONS)]
            paths = [("local", local), ("relay", relayed)]
            for name, (stt, llm, tts) in paths if i % 2 == 0 else paths[::-1]:  # alternate: no cache favours one
                figures[name].append(_first_audio_s(stt, llm, tts, pcm, question))
            turn_overhead[0] = 0.0
            _whole_turn(*relayed, pcm, question)  # every request to its own DONE, which carries the relay's time
            overheads.append(turn_overhead[0])
        rtt = [pool.ping() for _ in range(20)]
        appliance = _appliance_rss(url)
    finally:
        server.stop()
    return {
        "rtt_ms": _median_ms(rtt),
        "overhead_ms": _median_ms(overheads),
        "local_first_ms": _median_ms(figures["local"]),
        "relay_first_ms": _median_ms(figures["relay"]),
        "appliance_rss_mb": appliance["rss_mb"],
        "appliance_served": appliance["served"],
        "appliance_status": appliance["status"],
        "appliance_local": appliance["local"],
        "models": engines.models(),
    }


def render(result: dict[str, object], runs: int, load: str) -> str:
    return "\n".join(
        [
            "## Relay (loopback, CPU)",
            "",
            f"`cellcall bench relay --runs {runs}`, {load}. Relay and appliance on one machine (127.0.0.1); "
            f"models {result['models']}. No GPU was available: GPU figures are not measured.",
            "",
            "| figure | median | target |",
            "|---|---|---|",
            f"| PING round trip | {result['rtt_ms']:.2f} ms | |",
            f"| protocol overhead per turn (client wall - relay's own engine time, STT + LLM + TTS) | "
            f"{result['overhead_ms']:.2f} ms | <= 5 ms |",
            f"| utterance in -> first audio out, local engines | {result['local_first_ms']:.0f} ms | |",
            f"| utterance in -> first audio out, through the relay | {result['relay_first_ms']:.0f} ms | |",
            f"| appliance RSS, a whole emulated call with every engine on the relay (lazy) | "
            f"{result['appliance_rss_mb']:.0f} MB | <= 400 MB |",
            "",
            f"The appliance is a child process placing the dentist call on the emulator (status "
            f"{result['appliance_status']}, last turn served by {result['appliance_served']}, local models loaded: "
            f"{result['appliance_local'] or 'none'}); its RSS is its own peak (VmHWM), emulator included. "
            "The overhead is measured per request: the time the appliance waited minus the time the "
            "relay spent in its engines (DONE carries it), summed over a turn's three requests. Local and relay "
            "turns alternate, on the same loaded models, so neither gets the other's warm caches.",
        ]
    )


def run_bench(
    settings: Settings, runs: int = 5, out: Path = Path("docs/benchmarks.md"), echo: Callable[[str], None] = print
) -> str:
    result = measure(settings, runs)
    text = render(result, runs, load_text())
    write_section(out, "relay", text)
    return text
