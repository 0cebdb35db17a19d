"""`[line.sip]` settings -> validated SipOptions, and the SIP shapes derived from them (account, URIs).

Every mistake a user can make in `[line.sip]` is caught here, before a socket is opened, with the
key named. The password is carried but never printed: `SipOptions.__repr__` hides it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field

from cellcall.config import Settings
from cellcall.line import LineError

TRANSPORTS = ("udp", "tcp", "tls")
CODECS = {"pcmu": "pcmu", "pcma": "pcma", "g722": "g722/16000/1"}  # our name -> the stack's codec spec
_HOSTPORT = re.compile(r"(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:]+\])(?::(?P<port>[0-9]{1,5}))?")
_USER = re.compile(r"[A-Za-z0-9_.!~*'()&=+$,;?/%-]{1,64}")
_PEER_USER = re.compile(r"sips?:([+0-9A-Za-z._-]{1,64})@")  # anything else in a caller's URI is not a number
_UNSAFE = re.compile(r"[^\x20-\x7e]")


@dataclass(repr=False)
class SipOptions:
    domain: str
    username: str
    password: str = field(default="")
    proxy: str = ""
    register: bool = True
    register_interval_s: int = 300
    transport: str = "udp"
    listen: str = ""
    rtp_ports: tuple[int, int] = (10000, 20000)
    codecs: tuple[str, ...] = ("pcmu", "pcma")
    answer_timeout_s: float = 45.0  # outbound: no final answer by then -> CANCEL and NO_ANSWER
    media_timeout_s: float = 5.0  # established call without downlink RTP this long -> ended
    ring_interval_s: float = 4.0  # inbound: one INCOMING per this while the INVITE is pending (like RING)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "password"}
        return f"SipOptions({shown}, password={'***' if self.password else ''!r})"

    @property
    def listen_host(self) -> str | None:
        return self.listen.rsplit(":", 1)[0].strip("[]") if self.listen else None

    def uri_for(self, number: str) -> str:
        """The request URI for a dialled number: the number as the user part at our domain."""
        return f"sip:{number}@{self.domain}"

    def stack_codecs(self) -> tuple[str, ...]:
        return tuple(CODECS[name] for name in self.codecs)


def sip_options(settings: Settings, env: dict[str, str] | None = None) -> SipOptions:
    """The validated `[line.sip]` section; raises LineError naming the key that is wrong."""
    sip = settings.sip
    environ = os.environ if env is None else env
    password = sip.password or environ.get("CELLCALL_SIP_PASSWORD", "")
    if not sip.domain or not _HOSTPORT.fullmatch(sip.domain):
        raise LineError(f"line.sip.domain must be host or host:port, got {sip.domain!r}")
    if not _USER.fullmatch(sip.username or ""):
        raise LineError("line.sip.username is missing or has characters a SIP URI cannot carry")
    if any(ch in password for ch in '"\\') or any(ord(ch) < 0x20 for ch in password):
        raise LineError("line.sip.password may not contain quotes, backslashes or control characters")
    if sip.register and not password:
        raise LineError("line.sip.password (or CELLCALL_SIP_PASSWORD) is required when line.sip.register is true")
    for key, value in (("proxy", sip.proxy), ("listen", sip.listen)):
        if value and not _HOSTPORT.fullmatch(value):
            raise LineError(f"line.sip.{key} must be host:port, got {value!r}")
    if sip.transport not in TRANSPORTS:
        raise LineError(f"line.sip.transport must be one of {', '.join(TRANSPORTS)}, got {sip.transport!r}")
    unknown = [name for name in sip.codecs if name not in CODECS]
    if unknown or not sip.codecs:
        raise LineError(f"line.sip.codecs must be a non-empty list of {', '.join(CODECS)}, got {sip.codecs!r}")
    if sip.register_interval_s < 30:
        raise LineError(f"line.sip.register_interval_s must be at least 30, got {sip.register_interval_s}")
    return SipOptions(
        domain=sip.domain,
        username=sip.username,
        password=password,
        proxy=sip.proxy,
        register=sip.register,
        register_interval_s=sip.register_interval_s,
        transport=sip.transport,
        listen=sip.listen,
        rtp_ports=parse_port_range(sip.rtp_ports),
        codecs=tuple(sip.codecs),
        answer_timeout_s=settings.line.answer_timeout_s,
    )


def parse_port_range(text: str) -> tuple[int, int]:
    """ "10000-20000" -> (10000, 20000); RTP needs an even start and room for a few calls."""
    lo_text, sep, hi_text = text.partition("-")
    if not sep or not lo_text.strip().isdigit() or not hi_text.strip().isdigit():
        raise LineError(f'line.sip.rtp_ports must be "lo-hi", got {text!r}')
    lo, hi = int(lo_text), int(hi_text)
    if not 1024 <= lo < hi <= 65535 or hi - lo < 3:
        raise LineError(f"line.sip.rtp_ports must be a range of at least 4 ports within 1024-65535, got {text!r}")
    return lo, hi


def peer_number(peer: str | None) -> str | None:
    """The caller's user part from a From/peer URI ("sip:+4930123@host" -> "+4930123"); None if absent."""
    match = _PEER_USER.search(peer or "")
    return match.group(1) if match else None


def network_text(text: str | None, limit: int = 120) -> str:
    """A reason phrase or close reason from the far end, made safe for logs and reports (printable, short)."""
    return _UNSAFE.sub("?", text or "")[:limit].strip()
