"""The far end's SIP user agent, in its own process: `python -m cellcall.emulator.sip_peer --fd N ...`.

baresip allows one Runtime per process and the agent's SipLine already owns this process's one, so
the far end's user agent runs here. It is only a transport: it listens on loopback without
registering, answers (or rejects, or lets ring) the agent's INVITE, and relays the call over the
inherited socket `--fd` to the parent (cellcall/emulator/sip.py), where the emulator's own far-end
logic runs. Everything runs on this process's one asyncio loop, which owns the Runtime and the Call.

Wire format on the socket, both ways: one type byte, a 4-byte big-endian length, the payload.
  b"A": s16le audio (to the parent: what the agent sent over RTP; from it: what the far end says)
  b"E": a JSON event to the parent: ready, incoming, established {rate}, dtmf {digit}, closed {reason}
  b"C": a JSON command from the parent: {"cmd": "hangup"} or {"cmd": "dtmf", "digit": "5"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import struct
import sys

import baresip

HEADER = struct.Struct(">cI")
TICK_S = 0.01  # media relay wake-ups: half a frame, so no 20 ms frame waits long in either direction


def frame(kind: bytes, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


async def read_message(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    kind, size = HEADER.unpack(await reader.readexactly(HEADER.size))
    return kind, await reader.readexactly(size)


class Peer:
    """One far-end user agent that takes one call and relays it to the parent."""

    def __init__(self, args: argparse.Namespace, writer: asyncio.StreamWriter) -> None:
        self.args = args
        self.writer = writer
        self.call: baresip.Call | None = None
        self.closed = asyncio.Event()
        self.outbound = bytearray()  # far-end audio from the parent, not yet given to the stack
        self.tasks: list[asyncio.Task[None]] = []

    def event(self, name: str, **fields: object) -> None:
        self.writer.write(frame(b"E", json.dumps({"event": name, **fields}).encode()))

    def on_incoming(self, call: baresip.Call) -> None:
        if self.call is not None:  # one call per far end: a second INVITE is busy
            self.tasks.append(asyncio.get_running_loop().create_task(call.reject()))
            return
        self.call = call
        call.on(self._on_call_event)
        call.on_dtmf(lambda digit: self.event("dtmf", digit=digit.digit))
        self.event("incoming", peer=call.peer)
        self.tasks.append(asyncio.get_running_loop().create_task(self._take(call)))

    def _on_call_event(self, event: baresip.StackEvent) -> None:
        if event.event is baresip.Event.CALL_CLOSED and not self.closed.is_set():
            self.event("closed", reason=event.text or "")
            self.closed.set()

    async def _take(self, call: baresip.Call) -> None:
        await asyncio.sleep(self.args.answer_after)
        if self.args.mode == "ring":
            return  # the agent gives up (CANCEL) after its answer timeout
        if self.args.mode == "reject":
            await call.reject()
            return
        await call.answer()
        try:
            await call.wait_established(timeout=30)
        except baresip.CallFailed as exc:
            self.event("closed", reason=f"not established: {exc.status}")
            self.closed.set()
            return
        info = call.audio.info()
        self.event("established", rate=info.rx_sample_rate or 8000)
        await self._media(call, (info.rx_sample_rate or 8000) // 50 * 2)

    async def _media(self, call: baresip.Call, size: int) -> None:
        """Relay both directions until the call closes; the stack gets whole 20 ms frames only."""
        while not self.closed.is_set():
            try:
                heard = call.audio.read(size * 8)
                if heard:
                    self.writer.write(frame(b"A", heard))
                while len(self.outbound) >= size:
                    call.audio.write(bytes(self.outbound[:size]))
                    del self.outbound[:size]
            except (baresip.AudioNotActive, baresip.AudioRestarted):
                pass
            except baresip.BaresipError:
                return  # the stream is gone: CALL_CLOSED follows
            await self.writer.drain()
            await asyncio.sleep(TICK_S)

    def command(self, kind: bytes, payload: bytes) -> None:
        if kind == b"A":
            self.outbound += payload
            return
        order = json.loads(payload)
        call = self.call
        if call is None or self.closed.is_set():
            return
        # As tasks: a digit takes 120 ms to send, and the far end's audio must not wait behind it.
        loop = asyncio.get_running_loop()
        if order.get("cmd") == "hangup":
            self.tasks.append(loop.create_task(call.hangup()))
        elif order.get("cmd") == "dtmf":
            self.tasks.append(loop.create_task(call.send_dtmf(str(order.get("digit", "")))))


async def main(args: argparse.Namespace) -> None:
    sock = socket.socket(fileno=args.fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    runtime = baresip.Runtime()
    extra = f"sip_listen 127.0.0.1:{args.listen}\nrtp_ports {args.rtp}-{args.rtp + 20}\n"
    extra += "audio_jitter_buffer_type off\n"  # the parent's RelayPort is the playout buffer: an adaptive one
    # here would re-time the agent's audio mid-utterance (its delay steps are gaps at the far end's clock)
    await runtime.start(baresip.Config(net_interface="127.0.0.1", extra_config_text=extra))
    account = baresip.Account(
        user=args.user,
        domain=f"127.0.0.1:{args.listen}",
        password="",
        reg_interval=0,
        extra_params=("catchall=yes",),  # take an INVITE for any number: the agent dials the goal's number here
        audio_codecs=tuple(args.codecs.split(",")),
    )
    ua = await baresip.UserAgent.create(runtime, account)
    peer = Peer(args, writer)
    ua.on_incoming(peer.on_incoming)
    peer.event("ready")
    await writer.drain()
    try:
        while True:  # the parent closing the socket ends the far end
            kind, payload = await read_message(reader)
            peer.command(kind, payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        for task in peer.tasks:
            task.cancel()
        await runtime.close()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the inherited socket to the parent")
    parser.add_argument("--listen", type=int, required=True, help="UDP port on 127.0.0.1 for SIP")
    parser.add_argument("--rtp", type=int, required=True, help="first of 20 RTP ports")
    parser.add_argument("--user", default="farend")
    parser.add_argument("--mode", choices=("answer", "reject", "ring"), default="answer")
    parser.add_argument("--answer-after", type=float, default=0.5)
    parser.add_argument("--codecs", default="pcmu,pcma")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
