"""The harness for hostile-input cases: one `Case` per row, run as a real `e3eval`/`e3train` process.

A case sets up files in a temporary folder (`setup`, optional), runs a command line in that folder, and states the
exit code and a piece of stderr (or stdout) the user must see; `no_traceback` holds for every case. Adding a case is
one line in a table of `tests/test_hostile_*.py`; `{tmp}` and `{model}` in arguments are replaced by the temporary
folder and the tiny model's directory.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from conftest import run_cli


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int = 2
    says: str = ""  # a piece of stderr + stdout the user must see
    setup: Callable[[Path, Path], None] | None = None  # (tmp, model_dir) -> None
    program: str = "e3eval"
    check: Callable[[Path], None] | None = field(default=None)  # what must hold on disk afterwards


def run_case(case: Case, tmp: Path, model: Path) -> None:
    if case.setup is not None:
        case.setup(tmp, model)
    argv = [a.replace("{tmp}", str(tmp)).replace("{model}", str(model)) for a in case.argv]
    result = run_cli(case.program, *argv, cwd=tmp)
    output = result.stderr + result.stdout
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode == case.code, (result.returncode, output[-3000:])
    assert case.says in output, (case.says, output[-3000:])
    if case.check is not None:
        case.check(tmp)
