"""How the command line's progress bars behave: an ETA from the average rate, and no bar for an empty task.

`output.progress` builds every command's bars from these two pieces. rich's own ETA column estimates the rate from
the updates of the last 30 s and shows `-:--:--` until two of them fall in that window; a generation updates once
per batch (one engine call, often minutes), so it never had two and showed no ETA for a whole run. `AverageEta`
takes the rate since the task started instead, which any task with one update can give. `Bars` leaves out a task
whose total is 0 (a `grade 0/0` bar says nothing; it appears once a total > 0 arrives). Neither decides what a
task counts: the stages that add tasks do.
"""

from __future__ import annotations

from typing import Any

from rich.progress import Progress, Task, TaskID, TimeRemainingColumn
from rich.text import Text


class AverageEta(TimeRemainingColumn):
    """Time left at the average rate since the task started (`-:--:--` before its first update)."""

    def render(self, task: Task) -> Text:
        style = "progress.remaining"
        if task.total is None:
            return Text("", style=style)
        if task.finished:
            return Text("0:00:00", style=style)
        elapsed = task.elapsed
        if not task.completed or not elapsed:
            return Text("-:--:--", style=style)
        left = elapsed * (task.total - task.completed) / task.completed
        minutes, seconds = divmod(int(left), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours:d}:{minutes:02d}:{seconds:02d}", style=style)


class Bars(Progress):
    """rich's Progress, except that a task added with a total of 0 stays hidden until it gets a total > 0."""

    def __init__(self, *columns: Any, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self._empty: set[TaskID] = set()

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0, completed: int = 0,
                 visible: bool = True, **fields: Any) -> TaskID:  # fmt: skip
        empty = total is not None and total <= 0
        task = super().add_task(description, start, total, completed, visible and not empty, **fields)
        if empty and visible:
            self._empty.add(task)
        return task

    def update(self, task_id: TaskID, *, total: float | None = None, visible: bool | None = None,
               **kwargs: Any) -> None:  # fmt: skip
        if task_id in self._empty and total is not None and total > 0:
            self._empty.discard(task_id)
            visible = True if visible is None else visible
        super().update(task_id, total=total, visible=visible, **kwargs)
