"""Which figure families exist: family name -> its module's `FAMILY`, imported only when a spec or `--list` asks.

The registry knows family names (so an unknown `family:` in a spec is reported with the known ones without
importing matplotlib) and imports `figures.<name>` on first use. It does not validate specs (`spec.py`), load data or
draw (the family modules). The families follow the paper's data-drawn figures (e3 paper Sec. 4-6, App. C-E).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING

from e3eval.errors import UserError

if TYPE_CHECKING:
    from e3eval.figures.family import Family

# Family name -> module under figures/. Listed in paper order of their first figure.
FAMILY_MODULES: Mapping[str, str] = {
    "training": "e3eval.figures.training",  # Fig. 2, 3, 11, 14, 17
    "accuracy": "e3eval.figures.accuracy",  # Fig. 1, 2c, 4a, 4b, 5, 6, 7, 9, 16
    "bigram": "e3eval.figures.bigram_curves",  # Fig. 8
    "chained": "e3eval.figures.chained",  # Fig. 10
    "exploration": "e3eval.figures.exploration",  # Fig. 12
    "attempts": "e3eval.figures.attempt_probes",  # Fig. 13
    "lengths": "e3eval.figures.lengths",  # Fig. 15
}


def family_names() -> tuple[str, ...]:
    return tuple(FAMILY_MODULES)


@cache
def get_family(name: str) -> Family:
    """The family called `name`; a UserError for a name the registry does not know."""
    module_name = FAMILY_MODULES.get(name)
    if module_name is None:
        raise UserError(f"unknown figure family {name!r} (known: {', '.join(FAMILY_MODULES)})")
    family = importlib.import_module(module_name).FAMILY
    if family.name != name:  # a renamed FAMILY would make specs and the gallery disagree
        raise RuntimeError(f"{module_name}.FAMILY is named {family.name!r}, registered as {name!r}")
    return family


def all_families() -> dict[str, Family]:
    return {name: get_family(name) for name in FAMILY_MODULES}
