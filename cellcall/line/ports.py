"""Find the SIM7600G-H's AT and PCM ports: explicit paths win, else /dev/serial/by-id interfaces 02 and 04.

ttyUSB numbers move on every replug, so autodetection uses the stable by-id links of USB
1e0e:9001 (interface 02 = AT primary, 04 = raw PCM audio) and pairs the two of one device.
"""

from __future__ import annotations

from pathlib import Path

from cellcall.line import LineError

BY_ID = Path("/dev/serial/by-id")
SYS_TTY = Path("/sys/class/tty")
USB_ID = ("1e0e", "9001")
AT_SUFFIX = "-if02-port0"
AUDIO_SUFFIX = "-if04-port0"


def resolve_ports(
    at_port: str | None = None,
    audio_port: str | None = None,
    by_id: Path = BY_ID,
    sys_tty: Path = SYS_TTY,
) -> tuple[str, str]:
    """(AT path, audio path): the explicit ones when both are given, else autodetected."""
    if at_port and audio_port:
        return at_port, audio_port
    if at_port or audio_port:
        given = "--at-port" if at_port else "--audio-port"
        missing = "--audio-port" if at_port else "--at-port"
        raise LineError(f"{given} was given without {missing}: give both ports, or neither to autodetect")
    pairs = _modems(by_id, sys_tty)
    wanted = f"{by_id}/*{AT_SUFFIX} and *{AUDIO_SUFFIX} of USB {USB_ID[0]}:{USB_ID[1]} (SIM7600G-H)"
    if not pairs:
        raise LineError(f"no modem found: looked for {wanted}; pass --at-port and --audio-port explicitly")
    if len(pairs) > 1:
        names = ", ".join(at for at, _ in pairs)
        raise LineError(f"several modems found ({names}); choose one with --at-port and --audio-port")
    return pairs[0]


def _modems(by_id: Path, sys_tty: Path) -> list[tuple[str, str]]:
    if not by_id.is_dir():
        return []
    pairs = []
    for at in sorted(by_id.glob(f"*{AT_SUFFIX}")):
        audio = at.with_name(at.name[: -len(AT_SUFFIX)] + AUDIO_SUFFIX)
        if audio.exists() and _is_sim7600(at, sys_tty):
            pairs.append((str(at), str(audio)))
    return pairs


def _is_sim7600(link: Path, sys_tty: Path) -> bool:
    """True when sysfs says the tty behind `link` is USB 1e0e:9001 (or sysfs cannot tell)."""
    device = sys_tty / link.resolve().name / "device"
    for parent in [device.resolve(), *device.resolve().parents] if device.exists() else []:
        vendor, product = parent / "idVendor", parent / "idProduct"
        if vendor.is_file() and product.is_file():
            ids = (vendor.read_text().strip().lower(), product.read_text().strip().lower())
            return ids == USB_ID
    return "simtech" in link.name.lower() or "sim7600" in link.name.lower()
