"""The SIP far end for tests/sip_rig.py: a second baresip user agent in its own process.

It registers as +14155550132 at the rig's kamailio, then answers / rejects / lets ring an incoming
call (or dials out), plays a WAV in real time, records what it hears, sends DTMF when told, and
prints one JSON event per line on stdout: registered, incoming, established, dtmf, closed, done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import wave

import baresip

FRAME = 320  # 20 ms at 8 kHz, s16le mono


def say(event: str, **fields: object) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **fields}), flush=True)


def read_pcm(path: str | None) -> bytes:
    if not path:
        return b""
    with wave.open(path, "rb") as wav:
        if wav.getframerate() != 8000 or wav.getnchannels() != 1 or wav.getsampwidth() != 2:
            raise SystemExit(f"{path}: the far end plays 8 kHz mono s16 WAV only")
        return wav.readframes(wav.getnframes())


def timeline(paths: str, every_s: float) -> tuple[bytes, list[tuple[float, float]]]:
    """The WAVs of `--play` (comma-separated) laid out `every_s` apart (0: back to back), and their spans."""
    pcm, spans = bytearray(), []
    for index, path in enumerate(p for p in paths.split(",") if p):
        offset = max(len(pcm), int(index * every_s * 8000) * 2)
        pcm += b"\0" * (offset - len(pcm))
        pcm += read_pcm(path)
        spans.append((offset / 16000, len(pcm) / 16000))
    return bytes(pcm), spans


class Onsets:
    """Voice onsets in what the far end hears: a loud 20 ms frame after at least 300 ms of quiet."""

    def __init__(self, threshold: float = 500.0) -> None:
        self.threshold, self.quiet, self.rest = threshold, 15, b""

    def feed(self, data: bytes, now: float) -> None:
        data, self.rest = self.rest + data, b""
        whole = len(data) // FRAME * FRAME
        self.rest = data[whole:]
        for i in range(0, whole, FRAME):
            samples = memoryview(data[i : i + FRAME]).cast("h")
            loud = (sum(x * x for x in samples) / len(samples)) ** 0.5 > self.threshold
            if loud and self.quiet >= 15:
                say("voice-onset", at=now)
            self.quiet = 0 if loud else self.quiet + 1


async def media(call: baresip.Call, args: argparse.Namespace, closed: asyncio.Event) -> None:
    """Play `--play` (then silence), record into `--record`, on a 20 ms clock until the call closes."""
    pcm, spans = timeline(args.play, args.every)
    heard = bytearray()
    onsets = Onsets()
    start = time.monotonic()
    for begin, end in spans:
        say("utterance", start=start + begin, end=start + end)
    sent = 0
    dtmf_due = start + args.dtmf_after if args.send_dtmf else None
    hangup_due = start + args.hangup_after if args.hangup_after else None
    while not closed.is_set():
        now = time.monotonic()
        try:
            while sent * 0.02 <= now - start:
                chunk = pcm[sent * FRAME : (sent + 1) * FRAME]
                call.audio.write(chunk.ljust(FRAME, b"\0"))
                sent += 1
            received = call.audio.read(4096)
            heard += received
            onsets.feed(received, now)
        except (baresip.AudioNotActive, baresip.AudioRestarted):
            pass
        if dtmf_due is not None and now >= dtmf_due:
            dtmf_due = None
            await call.send_dtmf(args.send_dtmf)
            say("dtmf-sent", digits=args.send_dtmf)
        if hangup_due is not None and now >= hangup_due:
            say("hanging-up", played_ms=sent * 20)
            await call.hangup()
            break
        await asyncio.sleep(0.01)
    say("media-done", heard_bytes=len(heard), played_ms=sent * 20)
    if args.record:
        with wave.open(args.record, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(8000)
            wav.writeframes(bytes(heard))


async def handle(call: baresip.Call, args: argparse.Namespace, done: asyncio.Event) -> None:
    closed = asyncio.Event()

    def on_event(event: baresip.StackEvent) -> None:
        if event.event is baresip.Event.CALL_CLOSED:
            say("closed", reason=event.text)
            closed.set()
            done.set()
        elif event.event is baresip.Event.CALL_RINGING:
            say("ringing")

    call.on(on_event)
    call.on_dtmf(lambda digit: say("dtmf", digit=digit.digit))
    if args.mode == "reject":
        await call.reject()
        return
    if args.mode == "ring":
        return
    if args.mode == "answer":
        await asyncio.sleep(args.answer_after)
        await call.answer()
    try:
        await call.wait_established(timeout=60)
    except baresip.CallFailed as exc:
        say("failed", status=exc.status, reason=exc.reason)
        done.set()
        return
    say("established", rate=call.audio.info().rx_sample_rate)
    await media(call, args, closed)


async def main(args: argparse.Namespace) -> None:
    runtime = baresip.Runtime()
    extra = f"sip_listen 127.0.0.1:{args.listen}\nrtp_ports {args.rtp}-{args.rtp + 20}\n"
    await runtime.start(baresip.Config(net_interface="127.0.0.1", extra_config_text=extra))
    account = baresip.Account(
        user="+14155550132", domain=args.domain, password=args.password, audio_codecs=tuple(args.codecs.split(","))
    )
    ua = await baresip.UserAgent.create(runtime, account)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    tasks: list[asyncio.Task[None]] = []

    def on_incoming(call: baresip.Call) -> None:
        say("incoming", peer=call.peer)
        tasks.append(loop.create_task(handle(call, args, done)))

    ua.on_incoming(on_incoming)
    await ua.register()
    say("registered")
    if args.mode == "call":
        call = await ua.dial(args.call)
        say("dialled", uri=args.call)
        tasks.append(loop.create_task(handle(call, args, done)))
    await done.wait()
    await asyncio.sleep(0.3)  # let the recording task finish writing
    for task in tasks:
        if not task.done():
            task.cancel()
    say("done")
    await runtime.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domain", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--mode", choices=("answer", "reject", "ring", "call"), default="answer")
    parser.add_argument("--answer-after", type=float, default=0.5)
    parser.add_argument("--call", default="")
    parser.add_argument("--play", default="")
    parser.add_argument("--every", type=float, default=0.0, help="seconds between the starts of the --play WAVs")
    parser.add_argument("--record", default="")
    parser.add_argument("--send-dtmf", default="")
    parser.add_argument("--dtmf-after", type=float, default=1.0)
    parser.add_argument("--hangup-after", type=float, default=0.0)
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--rtp", type=int, default=31000)
    parser.add_argument("--codecs", default="pcmu,pcma")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
