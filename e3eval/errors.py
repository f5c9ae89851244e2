"""The one exception type for user mistakes.

A `UserError` is something the user can fix (a bad flag, a malformed line in their file, a run directory from another
schema version). The CLI prints its message on one line and exits with code 2, without a traceback. Anything else that
escapes is a bug in e3eval and keeps its traceback.
"""


class UserError(Exception):
    """A mistake in the user's input; the message names the file and line at fault where there is one."""


class EngineFailure(Exception):
    """Work that failed for a reason outside the user's input (an engine that did not start): one line, exit 1."""
