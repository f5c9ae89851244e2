"""Hydra override text: writing a string so that Hydra reads back exactly that string, and reading a command's
overrides back as key -> value.

verl takes its configuration as Hydra overrides (`key=value`); a path holding a comma, a quote or `${` would
otherwise become two list items, a syntax error or an interpolation. This module writes and reads text only; what
the keys mean is `curriculum.py`'s business, and Hydra itself (in the tests) is the judge of the round trip.
"""

from __future__ import annotations

import re

_HYDRA_NON_STRINGS = {"null", "true", "false", "inf", "nan"}


def hydra_value(text: str) -> str:
    """A string as a Hydra override value that Hydra reads back as exactly that string.

    Left bare only when it is plainly a path or a name (Hydra would read `123`, `1e5`, `null` or `true` as another
    type); otherwise single-quoted. Inside quotes, `${` would still be an OmegaConf interpolation, so it is written
    `\\${`, and backslashes are doubled where they precede a quote, `${` or the closing quote (elsewhere they are
    literal). `tests/test_hostile_train.py` checks the round trip through verl's real Hydra config.
    """
    if re.fullmatch(r"[A-Za-z0-9_./-]+", text) and (
        "/" in text or (text[0].isalpha() and text.lower() not in _HYDRA_NON_STRINGS)
    ):
        return text
    body = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    body = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), body)
    return "'" + body + "'"


def hydra_list(values: tuple[str, ...]) -> str:
    """Strings as a Hydra list override value, one item per string whatever commas or quotes they hold."""
    return "[" + ",".join(hydra_value(v) for v in values) + "]"


def override_values(overrides: list[str] | tuple[str, ...]) -> dict[str, str]:
    """key -> value text of `key=value` overrides (`+key` and `++key` included); a later one wins, as in Hydra."""
    return {key.lstrip("+"): value for key, sep, value in (x.partition("=") for x in overrides) if sep}
