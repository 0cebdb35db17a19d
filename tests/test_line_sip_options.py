"""The SIP line's settings and decisions that need no server: [line.sip] parsing, secrets, SIP code mapping."""

from __future__ import annotations

import hashlib
from pathlib import Path

import baresip
import pytest

from cellcall.config import load_settings
from cellcall.line import LineError, LineEventKind
from cellcall.line.factory import make_line
from cellcall.line.sip import SipLine, sip_options
from cellcall.line.sip.line import _failure_outcome
from cellcall.line.sip.options import network_text, parse_port_range, peer_number

NATIVE_SHA256 = "92b681f7db4332307003499f531ebc5baefc671a6bf0d38c45c158cfd8a7cd8d"  # baresip-python 0.5.2a3


def write_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "cellcall.toml"
    path.write_text(body)
    return path


def test_line_sip_section_and_env_password(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        '[line]\nkind = "sip"\n[line.sip]\ndomain = "pbx.example.net:5070"\nusername = "alice"\n'
        'transport = "tcp"\nrtp_ports = "30000-30010"\ncodecs = ["g722", "pcmu"]\n',
    )
    settings = load_settings(config, env={"CELLCALL_SIP_PASSWORD": "hunter2 two"})
    options = sip_options(settings, env={})
    assert settings.line.kind == "sip" and settings.source_of("sip.domain").startswith("file:")
    assert options.password == "hunter2 two" and options.transport == "tcp"
    assert options.rtp_ports == (30000, 30010) and options.stack_codecs() == ("g722/16000/1", "pcmu")
    assert options.uri_for("+15551234") == "sip:+15551234@pbx.example.net:5070"
    assert isinstance(make_line(settings), SipLine)  # built, not opened: nothing is sent yet


def test_the_password_is_never_shown(tmp_path: Path) -> None:
    config = write_config(tmp_path, '[line.sip]\ndomain = "pbx.example.net"\nusername = "alice"\npassword = "s3cr3t!"\n')
    settings = load_settings(config, env={})
    rows = {key: value for key, value, _ in settings.effective()}
    assert rows["sip.password"] == "***"
    options = sip_options(settings, env={})
    assert "s3cr3t!" not in repr(options) and "s3cr3t!" not in str(SipLine(options).status())


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("domain", "", "line.sip.domain"),
        ("username", "al ice", "line.sip.username"),
        ("transport", "ws", "line.sip.transport"),
        ("codecs", ["opus"], "line.sip.codecs"),
        ("rtp_ports", "20000-10000", "line.sip.rtp_ports"),
        ("listen", "not a host", "line.sip.listen"),
        ("password", "", "CELLCALL_SIP_PASSWORD"),
        ("register_interval_s", 5, "register_interval_s"),
    ],
)
def test_each_wrong_value_is_named(key: str, value: object, message: str) -> None:
    settings = load_settings(None, env={}, overrides={"sip.domain": "pbx.example.net", "sip.username": "alice"})
    settings.sip.password = "pw"
    setattr(settings.sip, key, value)
    with pytest.raises(LineError, match=message):
        sip_options(settings, env={})


@pytest.mark.parametrize(
    ("status", "reason", "kind"),
    [
        (486, "Busy Here", LineEventKind.BUSY),
        (600, "Busy Everywhere", LineEventKind.BUSY),
        (480, "Temporarily Unavailable", LineEventKind.NO_ANSWER),
        (408, "Request Timeout", LineEventKind.NO_ANSWER),
        (404, "Not Found", LineEventKind.ERROR),
        (503, "Service Unavailable", LineEventKind.ERROR),
    ],
)
def test_final_answers_map_to_outcomes_with_the_code(status: int, reason: str, kind: LineEventKind) -> None:
    outcome, detail = _failure_outcome(baresip.CallFailed(f"{status} {reason}", status=status, reason=reason))
    assert outcome is kind and detail == f"SIP {status} {reason}"


def test_peer_numbers_and_port_ranges() -> None:
    assert peer_number('"Bob" <sip:+4930123@10.0.0.1:5060;transport=udp>') == "+4930123"
    assert peer_number("sip:anonymous@anonymous.invalid") == "anonymous"
    assert peer_number(None) is None and peer_number("garbage") is None
    assert peer_number("sip:**bold** [x](y)@evil") is None  # a caller's URI cannot smuggle markup in
    assert network_text("486 Busy\x1b[31m\nHere" + "x" * 300) == "486 Busy?[31m?Here" + "x" * 102
    assert parse_port_range("10000-10003") == (10000, 10003)
    with pytest.raises(LineError, match="rtp_ports"):
        parse_port_range("10000")


def test_installed_baresip_is_the_reviewed_build() -> None:
    """pip cannot pin a hash from pyproject.toml, so the installed native library is checked here."""
    native = next(Path(baresip.__file__).parent.glob("_native*.so"))
    assert baresip.__version__ == "0.5.2a3"
    assert hashlib.sha256(native.read_bytes()).hexdigest() == NATIVE_SHA256
