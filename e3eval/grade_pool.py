"""Isolated grading: worker processes with a hard per-item deadline, so no answer can hang or crash a run.

math-verify's own timeouts rely on SIGALRM, which only fires on a process's main thread and cannot interrupt a long
C call (a huge integer power, a factorial). `GraderPool` therefore runs `grade.grade_answer` in separate worker
processes (`python -m e3eval.grade_pool`, speaking JSON lines over pipes, so nothing is pickled and the caller's
`__main__` is never re-imported), gives each item a wall-clock deadline, and kills and respawns a worker that
overruns it or dies; that item is recorded as `timeout` or `error`, never retried. Workers run under an
address-space limit so a runaway allocation fails fast instead of swapping the machine. The pool grades each key
once; deduplicating (gold, answer) pairs is the caller's job. `grade` serves callers that grade one item at a time
with a long-lived pool (the RL reward), leaving nothing behind in `results`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any

from e3eval.grade import Verdict, grade_answer

_STARTUP_TIMEOUT_S = 300.0


def _serve(inner_timeout_s: int, memory_limit_mb: int) -> None:
    """Worker loop: one JSON request per stdin line, one JSON verdict per stdout line."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if memory_limit_mb > 0:
        import resource

        limit = memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import math_verify  # noqa: F401  (loaded before "ready", so deadlines measure grading only)

    out = sys.stdout
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        key, gold, answer = json.loads(line)
        try:
            verdict = grade_answer(gold, answer, inner_timeout_s)
        except MemoryError:
            verdict = Verdict("error", None, f"out of memory (worker limit {memory_limit_mb} MiB)")
        out.write(json.dumps([key, verdict.status, verdict.correct, verdict.detail]) + "\n")
        out.flush()


@dataclass
class _Worker:
    process: subprocess.Popen
    stderr: Any
    buffer: bytes = b""
    ready: bool = False
    task: tuple[int, str, str | None] | None = None
    started: float = 0.0
    born: float = field(default_factory=time.monotonic)

    def fileno(self) -> int:
        return self.process.stdout.fileno()  # type: ignore[union-attr]


class GraderPool:
    """Grade (gold, answer) items in `workers` processes; `results` maps each submitted id to its Verdict."""

    def __init__(
        self,
        workers: int = 1,
        deadline_s: float = 10.0,
        inner_timeout_s: int = 3,
        memory_limit_mb: int = 4096,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.deadline_s = deadline_s
        self.inner_timeout_s = max(1, min(int(inner_timeout_s), int(deadline_s)))
        self.memory_limit_mb = memory_limit_mb
        self._queue: deque[tuple[int, str, str | None]] = deque()
        self._workers = [self._spawn() for _ in range(workers)]
        self.results: dict[int, Verdict] = {}
        self.kills = 0
        self.submitted = 0

    def _spawn(self) -> _Worker:
        code = f"from e3eval.grade_pool import _serve; _serve({self.inner_timeout_s}, {self.memory_limit_mb})"
        # The child must import this very e3eval, however the parent found it (installed, checkout, sys.path).
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
        # A file, not a pipe: math-verify's warnings can never block the worker. Closed in _stop.
        stderr = tempfile.TemporaryFile()  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            env=env,
        )
        return _Worker(process, stderr)

    def submit(self, item_id: int, gold: str, answer: str | None) -> None:
        self._queue.append((item_id, gold, answer))
        self.submitted += 1

    @property
    def pending(self) -> int:
        return self.submitted - len(self.results)

    @property
    def alive(self) -> bool:
        """Whether every worker process is still running (one that died while idle would fail its next item)."""
        return all(worker.process.poll() is None for worker in self._workers)

    def grade(self, gold: str, answer: str | None) -> Verdict:
        """Grade one item and wait for its verdict; `results` and `pending` are left as they were."""
        item_id = -1 - self.submitted  # negative ids never collide with a caller's own (non-negative) ones
        self.submit(item_id, gold, answer)
        while item_id not in self.results:
            self.pump(wait_s=0.5)
        self.submitted -= 1  # the item leaves the books whole, so a pool serving millions of calls stays small
        return self.results.pop(item_id)

    def _replace(self, index: int, verdict: Verdict) -> None:
        worker = self._workers[index]
        if worker.task is not None:
            self.results[worker.task[0]] = verdict
        _stop(worker)
        self._workers[index] = self._spawn()

    def _dispatch(self) -> None:
        for index, worker in enumerate(self._workers):
            if worker.ready and worker.task is None and self._queue:
                worker.task = self._queue.popleft()
                worker.started = time.monotonic()
                try:
                    worker.process.stdin.write((json.dumps(worker.task) + "\n").encode())  # type: ignore[union-attr]
                    worker.process.stdin.flush()  # type: ignore[union-attr]
                except (BrokenPipeError, OSError):
                    self._replace(index, Verdict("error", None, "grader worker died"))

    def _read(self, index: int) -> None:
        worker = self._workers[index]
        chunk = os.read(worker.fileno(), 1 << 16)
        if not chunk:
            worker.process.wait(timeout=5)
            code = worker.process.returncode
            if not worker.ready:
                worker.stderr.seek(0)
                tail = worker.stderr.read()[-2000:].decode("utf-8", "replace").strip()
                raise RuntimeError(f"a grader worker failed to start (exit code {code}): {tail}")
            self._replace(index, Verdict("error", None, f"grader worker died (exit code {code})"))
            return
        worker.buffer += chunk
        *lines, worker.buffer = worker.buffer.split(b"\n")
        for line in lines:
            message = json.loads(line)
            if isinstance(message, dict):
                worker.ready = True
                continue
            item_id, status, correct, detail = message
            self.results[item_id] = Verdict(status, correct, detail)
            worker.task = None

    def pump(self, wait_s: float = 0.0) -> None:
        """Dispatch queued items and collect finished ones, waiting at most `wait_s` seconds for news."""
        self._dispatch()
        now = time.monotonic()
        timeout = wait_s
        for worker in self._workers:
            if worker.task is not None:
                timeout = min(timeout, max(0.0, worker.started + self.deadline_s - now))
        for worker in wait(list(self._workers), timeout=timeout):
            self._read(self._workers.index(worker))  # type: ignore[arg-type]
        now = time.monotonic()
        for index, worker in enumerate(self._workers):
            if worker.task is not None and now - worker.started > self.deadline_s:
                self.kills += 1
                self._replace(index, Verdict("timeout", None, f"killed after the {self.deadline_s:g}s deadline"))
            elif not worker.ready and now - worker.born > _STARTUP_TIMEOUT_S:
                raise RuntimeError("a grader worker did not start within 5 minutes")
        self._dispatch()

    def drain(self, progress: Callable[[int], None] | None = None) -> dict[int, Verdict]:
        """Block until every submitted item has a verdict; `progress(n_done)` is called as they arrive."""
        while self.pending:
            before = len(self.results)
            self.pump(wait_s=0.5)
            if progress is not None and len(self.results) != before:
                progress(len(self.results))
        return self.results

    def close(self) -> None:
        for worker in self._workers:
            _stop(worker)

    def __enter__(self) -> GraderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stop(worker: _Worker) -> None:
    process = worker.process
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    for stream in (process.stdin, process.stdout, worker.stderr):
        if stream is not None:
            stream.close()


def default_workers() -> int:
    """Leave one core for the parent (decoding and extraction), use at most four grader processes."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))
