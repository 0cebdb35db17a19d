"""Port resolution: explicit paths, /dev/serial/by-id autodetection of USB 1e0e:9001, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cellcall.line import LineError
from cellcall.line.ports import resolve_ports

SIMTECH = "usb-SimTech__Incorporated_SimTech__Incorporated_0123456789ABCDEF"


def fake_usb_device(root: Path, serial: str, vendor: str, product: str, interfaces: dict[str, str]) -> None:
    """A by-id dir and a sysfs tty tree like Linux makes for a USB serial device."""
    dev, by_id, sys_tty = root / "dev", root / "by-id", root / "sys" / "class" / "tty"
    usb = root / "sys" / "devices" / f"usb-{serial}"
    for path in (dev, by_id, sys_tty, usb):
        path.mkdir(parents=True, exist_ok=True)
    (usb / "idVendor").write_text(vendor + "\n")
    (usb / "idProduct").write_text(product + "\n")
    for interface, tty in interfaces.items():
        (dev / tty).touch()
        (by_id / f"{serial}-if{interface}-port0").symlink_to(dev / tty)
        port = usb / f"1-1:1.{interface[-1]}" / tty
        port.mkdir(parents=True)
        (sys_tty / tty).mkdir()
        (sys_tty / tty / "device").symlink_to(port)


def test_explicit_ports_win(tmp_path: Path) -> None:
    assert resolve_ports("/dev/a", "/dev/b", by_id=tmp_path / "none") == ("/dev/a", "/dev/b")


def test_one_explicit_port_is_an_error() -> None:
    with pytest.raises(LineError, match="--at-port was given without --audio-port"):
        resolve_ports(at_port="/dev/ttyUSB2")


def test_autodetects_interfaces_02_and_04_of_the_sim7600(tmp_path: Path) -> None:
    fake_usb_device(tmp_path, SIMTECH, "1e0e", "9001", {"00": "ttyUSB0", "02": "ttyUSB2", "04": "ttyUSB4"})
    fake_usb_device(tmp_path, "usb-FTDI_FT232R_A1", "0403", "6001", {"02": "ttyUSB9", "04": "ttyUSB10"})
    at, audio = resolve_ports(by_id=tmp_path / "by-id", sys_tty=tmp_path / "sys" / "class" / "tty")
    assert at.endswith(f"{SIMTECH}-if02-port0") and audio.endswith(f"{SIMTECH}-if04-port0")


def test_not_found_names_what_was_looked_for(tmp_path: Path) -> None:
    fake_usb_device(tmp_path, "usb-FTDI_FT232R_A1", "0403", "6001", {"02": "ttyUSB9", "04": "ttyUSB10"})
    with pytest.raises(LineError, match=r"if02-port0 and \*-if04-port0 of USB 1e0e:9001") as err:
        resolve_ports(by_id=tmp_path / "by-id", sys_tty=tmp_path / "sys" / "class" / "tty")
    assert "--at-port" in str(err.value)
    with pytest.raises(LineError, match="no modem found"):
        resolve_ports(by_id=tmp_path / "missing")


def test_two_modems_must_be_chosen_explicitly(tmp_path: Path) -> None:
    fake_usb_device(tmp_path, SIMTECH, "1e0e", "9001", {"02": "ttyUSB2", "04": "ttyUSB4"})
    fake_usb_device(tmp_path, SIMTECH + "2", "1e0e", "9001", {"02": "ttyUSB7", "04": "ttyUSB8"})
    with pytest.raises(LineError, match="several modems found"):
        resolve_ports(by_id=tmp_path / "by-id", sys_tty=tmp_path / "sys" / "class" / "tty")
