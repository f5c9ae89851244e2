"""A model's identity: its resolved path plus a cheap fingerprint of its weights.

Stored rows that a model produced (forced answers, probe rows) are keyed on the model's path *and* this fingerprint,
so new weights exported to an old path (`ckpt/latest`, a rewritten `global_step_N`) never reuse the old model's
answers. The fingerprint is a sha256 over, for every file of the folder that defines the model (`config.json`,
`generation_config.json`, the weight index and every weight file: `.safetensors`, `.bin`, `.pt`, `.pth`, `.gguf`):
its name, its size, and 16 evenly spaced 64 KiB windows of its bytes (the first and the last included). That reads
about 1 MiB per weight file (~20 MiB for a 32B model in 17 shards), is unchanged by copying or moving the folder, and
changes whenever training touched the sampled bytes, which a new step of full fine-tuning always does (every tensor
moves). It can miss a change confined to bytes between the windows (a re-export that altered one small tensor only);
the README says so. A hub name or a served model (`--backend openai`) has no local files: its fingerprint is `None`
and it is keyed by name alone. This module reads files; it loads no model.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DTYPES = ("auto", "bfloat16", "float16", "float32")  # `--dtype` of every command that loads a model
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
DEFINING_FILES = ("config.json", "generation_config.json")
_WINDOWS = 16
_WINDOW_BYTES = 64 << 10
_VERSION = "w1"
_cache: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def model_path(model: str) -> str:
    """The model as tables name it: a local folder by its absolute path (`./m` and `/abs/m` are one model), anything
    else (a hub name, a served model) as given."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def model_fingerprint(model: str) -> str | None:
    """The fingerprint of a local model folder's weights (see the module text); None for a hub or served name."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and _defines_model(p.name))
    stats = tuple((p.name, (s := p.stat()).st_size, s.st_mtime_ns) for p in files)
    key = (str(folder.resolve()), stats)
    if key not in _cache:  # a folder probed step after step is read once per process while its files stay as they are
        digest = hashlib.sha256(_VERSION.encode())
        for path, (name, size, _) in zip(files, stats, strict=True):
            digest.update(f"\0{name}\0{size}\0".encode())
            digest.update(_sampled_bytes(path, size))
        _cache[key] = f"{_VERSION}:{digest.hexdigest()[:24]}"
    return _cache[key]


def _defines_model(name: str) -> bool:
    return name in DEFINING_FILES or name.endswith(WEIGHT_SUFFIXES) or name.endswith(".index.json")


def _sampled_bytes(path: Path, size: int) -> bytes:
    """The whole file when it is small, else `_WINDOWS` windows spread evenly from its start to its end."""
    with path.open("rb") as handle:
        if size <= _WINDOWS * _WINDOW_BYTES:
            return handle.read()
        chunks = []
        last = size - _WINDOW_BYTES
        for i in range(_WINDOWS):
            handle.seek(last * i // (_WINDOWS - 1), os.SEEK_SET)
            chunks.append(handle.read(_WINDOW_BYTES))
        return b"".join(chunks)
