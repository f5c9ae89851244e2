"""Loading tokenizers, and where a model or tokenizer named on the command line comes from (a local folder or the
hub): one place for every stage that needs one (prompts, import, truncation, servers' outputs).

`resolve_model_source` decides local path vs hub id once, before anything loads: a name that is neither an existing
path nor a hub id the hub could answer (offline by setting, or no connection within a couple of seconds, and not in
the local hub cache) is one `UserError` at once, instead of transformers' retries (~25-50 s) ending in a message about
internet connections. A tokenizer is loaded by local path, or by hub name when online; a failure is a `UserError`
naming it. Its `fingerprint` (a hash of everything that maps ids to text: vocabulary, merges, added tokens, decoder) is
recorded with every run, so a later `--tokenizer` that would decode the stored ids to other text is caught even when
it has the same vocabulary size. What a tokenizer is used for (rendering prompts, exact truncation) is the business
of the stages that call this; whether a hub model's files exist is `backends.check_model`'s.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import socket
import threading
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from e3eval.errors import UserError

HUB_TIMEOUT_S = 2.0  # how long the reachability check waits for a TCP connection to the hub
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # `name` or `org/name`; anything else can only be a path
_TRUE = {"1", "on", "yes", "true"}  # huggingface_hub's reading of its boolean environment variables


def resolve_model_source(name: str, flag: str) -> Literal["local", "hub"]:
    """Where `name` (given as `flag`) loads from: `local` (an existing path) or `hub` (a hub id that is cached, or
    while the hub is reachable). Anything else is a one-line UserError, at once.

    A name looks local when it starts with `/`, `.` or `~`, its parent folder exists here, or it cannot be a hub id
    (`a/b/c`); such a name that does not exist is `no such file or directory`. A hub-shaped name (`org/typo`, or a
    mistyped relative path with one slash) that is not in the hub cache fails when the hub is unreachable: offline by
    setting (`HF_HUB_OFFLINE` / `TRANSFORMERS_OFFLINE`) or no connection to it within `HUB_TIMEOUT_S` (checked once
    per process). Whether a reachable hub has the repository is left to the loader.
    """
    source, problem = _source(str(name))
    if problem is not None:
        raise UserError(f"{flag} {name}: {problem}")
    return source


def _source(name: str) -> tuple[Literal["local", "hub"], str | None]:
    """`resolve_model_source` without the flag: the source, and why it cannot load (None when it may)."""
    path = Path(name).expanduser()
    if path.exists():
        return "local", None
    looks_local = name.startswith(("/", ".", "~")) or (path.parent != Path(".") and path.parent.is_dir())
    if looks_local or not _HUB_ID.fullmatch(name):
        return "local", "no such file or directory"
    if _in_hub_cache(name):
        return "hub", None
    offline = offline_reason()
    if offline is not None:
        return (
            "hub",
            f"no such local folder, and the hub is unreachable (offline: {offline}); give the model's local path",
        )
    return "hub", None


def offline_reason() -> str | None:
    """Why the hub cannot be reached (`HF_HUB_OFFLINE=1`, or no connection), or None when it can be tried."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"{variable}={os.environ[variable]}"
    endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
    url = urllib.parse.urlsplit(endpoint)
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                               "all_proxy"))  # fmt: skip
    if proxied or not url.hostname:  # a proxy answers for the hub: only the real request can tell
        return None
    port = url.port or (443 if url.scheme == "https" else 80)
    if _reachable(url.hostname, port):
        return None
    return f"no connection to {url.hostname} within {HUB_TIMEOUT_S:g} s"


@functools.cache
def _reachable(host: str, port: int) -> bool:
    """A TCP connection to `host:port` within HUB_TIMEOUT_S, name lookup included (a thread bounds a slow DNS)."""
    connected = threading.Event()

    def attempt() -> None:
        try:
            with socket.create_connection((host, port), timeout=HUB_TIMEOUT_S):
                connected.set()
        except OSError:
            pass

    threading.Thread(target=attempt, daemon=True).start()
    return connected.wait(HUB_TIMEOUT_S)


def _in_hub_cache(repo_id: str) -> bool:
    """Whether the local hub cache holds `repo_id`'s config or tokenizer config (it then loads offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return any(
            isinstance(try_to_load_from_cache(repo_id, filename), str)
            for filename in ("config.json", "tokenizer_config.json")
        )
    except Exception:  # an id the cache cannot hold (validation) or no huggingface_hub: not cached
        return False


def load_tokenizer(name_or_path: str) -> Any:
    """Load a tokenizer from a local path (or the hub when online); failures are user errors, and a name that can
    load from neither fails at once (`resolve_model_source`)."""
    _, problem = _source(str(name_or_path))
    if problem is not None:
        raise UserError(f"cannot load tokenizer {str(name_or_path)!r}: {problem}")
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise UserError(f"cannot load tokenizer {name_or_path!r}: {type(exc).__name__}: {exc}") from None


def fingerprint(tokenizer: Any) -> str:
    """A short hash of what decides how ids decode; equal for the same tokenizer loaded from different paths."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for runtime in ("truncation", "padding"):  # settings of a call, not of the vocabulary
            spec.pop(runtime, None)
    else:
        spec = {"vocab": sorted(tokenizer.get_vocab().items())}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
