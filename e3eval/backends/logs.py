"""Engine logs in a file, engine failures in one line.

vLLM and SGLang print hundreds of lines while they start (their loggers, their engine subprocesses, Ray, C++ code)
and several tracebacks when they fail. `EngineLog` sends all of it to `RUN/logs/engine-<time>.log` while an engine
lives: file descriptors 1 and 2 point at the log (subprocesses inherit them, `sys.stdout` writes there too) and the
engines' Python log handlers write to it. e3eval's own lines and progress bars go through `terminal()`, which is the
terminal the descriptors were on. With `verbose` nothing is redirected.

`start_failure` turns the exception of an engine that did not start into one line: the engine's own last error
message (read back from the log: the parent only hears "initialization failed"), the log's path, and the likely fix.
Settings the user gave that the engine rejects are a `UserError` (exit 2); anything else an `EngineFailure` (exit 1).
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from e3eval.errors import EngineFailure, UserError

ENGINE_LOGS = "logs"  # the folder of a run that holds its engine logs
LOGGERS = ("vllm", "sglang", "ray", "torch", "transformers")
_VLLM_STREAM = "VLLM_LOGGING_STREAM"
_terminal: tuple[TextIO | None, TextIO | None] = (None, None)  # while an engine log is active


def terminal(index: int) -> TextIO:
    """Where e3eval's own output goes (0: stdout, 1: stderr): sys.stdout / sys.stderr, or, while an engine's
    output goes to its log, the terminal they were on."""
    return _terminal[index] or (sys.stdout if index == 0 else sys.stderr)


# The last line of a traceback: `ValueError: ...`, possibly after a log prefix (`(EngineCore pid=12) `).
_EXCEPTION_LINE = re.compile(r"(?:^|\s)((?:[A-Za-z_][\w.]*\.)?[A-Z]\w*(?:Error|Exception)): (.+)$")
_GENERIC = ("Engine core initialization failed", "See root cause above", "Engine process failed to start")
_HINTS = (
    (re.compile(r"Available memory|less than desired|free memory on device", re.I),
     "less memory is free than --gpu-memory-utilization asks for: lower it, or free the memory other processes hold"),
    (re.compile(r"KV cache|max seq len .* larger than|out of memory|OutOfMemory|CUDA error: out", re.I),
     "the model and its KV cache do not fit: raise --gpu-memory-utilization or --tp, or lower --max-model-len"),
    (re.compile(r"max_model_len|max seq len|context length|maximum model length|max_position_embeddings", re.I),
     "--max-model-len must fit the model's context (the preflight checks it unless --no-context-check)"),
    (re.compile(r"tensor_parallel|tp_size|number of GPUs|device count|world size", re.I),
     "--tp must divide the model's attention heads and not exceed the GPUs here"),
)  # fmt: skip


class EngineLog:
    """Where an engine's output goes while it lives: a log file (default) or the console (`verbose`)."""

    def __init__(self, folder: Path | None, engine: str, verbose: bool = False) -> None:
        self.engine = engine
        self.verbose = verbose or folder is None
        self.path: Path | None = None if self.verbose else folder / f"engine-{_stamp()}.log"  # type: ignore[operator]
        self._saved_fds: list[tuple[int, int]] = []
        self._handlers: list[tuple[logging.StreamHandler, Any]] = []
        self._file: TextIO | None = None
        self._saved_env: str | None = None

    def start(self) -> None:
        if self.path is None or self._file is not None:
            return
        folder = self.path.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise UserError(f"{folder}: cannot hold the engine's log ({exc.strerror}); it must be a folder: move "
                            "what is there away") from None  # fmt: skip
        _flush()
        self._file = open(fd, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed in stop)
        terminal = [_on_fd(sys.stdout, 1), _on_fd(sys.stderr, 2)]
        for target in (1, 2):
            self._saved_fds.append((target, os.dup(target)))
            os.dup2(fd, target)
        # vLLM binds its log handler when the engine starts, to the stream this names: the original stdout, which
        # descriptor 1 now sends to the log.
        self._saved_env = os.environ.get(_VLLM_STREAM)
        os.environ[_VLLM_STREAM] = "ext://sys.__stdout__"
        # e3eval's own output stays on the terminal (`terminal()`): streams on the saved descriptors.
        global _terminal
        _terminal = tuple(_stream(saved) if on else None for on, (_, saved) in zip(terminal, self._saved_fds,
                                                                                    strict=True))  # fmt: skip
        self.adopt_handlers()

    def adopt_handlers(self) -> None:
        """Point the engines' stream log handlers (bound to the console when the engine was imported) at the log;
        call again after importing an engine."""
        if self._file is None:
            return
        for name in LOGGERS:
            for handler in logging.getLogger(name).handlers:
                if type(handler) is logging.StreamHandler and all(h is not handler for h, _ in self._handlers):
                    self._handlers.append((handler, handler.setStream(self._file)))

    def stop(self) -> None:
        if self._file is None:
            return
        _flush()
        for handler, stream in self._handlers:
            handler.setStream(stream)
        self._handlers.clear()
        if self._saved_env is None:
            os.environ.pop(_VLLM_STREAM, None)
        else:
            os.environ[_VLLM_STREAM] = self._saved_env
        global _terminal
        for stream in _terminal:
            if stream is not None:
                stream.flush()
        _terminal = (None, None)
        for target, saved in self._saved_fds:
            os.dup2(saved, target)
            os.close(saved)
        self._saved_fds.clear()
        self._file.close()
        self._file = None

    def tail(self, limit: int = 1 << 20) -> str:
        """The log's last `limit` bytes (empty when there is no log)."""
        if self.path is None or not self.path.is_file():
            return ""
        with self.path.open("rb") as handle:
            handle.seek(max(0, self.path.stat().st_size - limit))
            return handle.read().decode("utf-8", "replace")

    def cause(self, exc: BaseException) -> str:
        """Why the engine failed: its own last error in the log, else `exc` in one line."""
        return root_cause(self.tail()) or _one_line(exc)

    def start_failure(self, exc: BaseException, settings_given: bool) -> Exception:
        """The one-line error for an engine that failed to start (to raise `from None`)."""
        message = self.cause(exc)
        where = f" (log: {self.path})" if self.path is not None else ""
        hint = next((fix for pattern, fix in _HINTS if pattern.search(message)), None)
        hint = hint or f"the log has the details; --backend hf runs without {self.engine}"
        line = f"{self.engine} could not start: {message[:400]}{where}; {hint}"
        # The engine rejected a value before starting anything: a setting the user gave (exit 2).
        if settings_given and isinstance(exc, (ValueError, TypeError)):
            return UserError(line)
        return EngineFailure(line)


@contextmanager
def silenced() -> Iterator[None]:
    """Descriptors 1 and 2 to /dev/null while the block runs (an engine's import prints before any log exists)."""
    _flush()
    null = os.open(os.devnull, os.O_WRONLY)
    saved = [(target, os.dup(target)) for target in (1, 2)]
    try:
        for target, _ in saved:
            os.dup2(null, target)
        yield
    finally:
        _flush()
        for target, fd in saved:
            os.dup2(fd, target)
            os.close(fd)
        os.close(null)


def root_cause(log: str) -> str | None:
    """The engine's own last error message in `log`, skipping the parent's generic "see root cause above"."""
    found = None
    for line in log.splitlines():
        match = _EXCEPTION_LINE.search(line.strip())
        if match and not any(generic in match.group(2) for generic in _GENERIC):
            found = f"{match.group(1).rsplit('.', 1)[-1]}: {match.group(2).strip()}"
    return found


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}-{time.monotonic_ns() % 1_000_000:06d}"


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def _on_fd(stream: Any, fd: int) -> bool:
    """Whether `stream` (or the file a rich progress display proxies) writes to descriptor `fd`."""
    stream = getattr(stream, "rich_proxied_file", stream)
    try:
        return stream.fileno() == fd
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False


def _stream(fd: int) -> TextIO:
    return open(fd, "w", buffering=1, encoding=sys.stdout.encoding or "utf-8", closefd=False)
