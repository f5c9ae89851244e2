"""Does a probed model read the run's tokens as they were written: its tokenizer files, its tokenizer against the
run's stored prompt ids, and its vocabulary against the run's and the reference model's. Checked before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e3eval.errors import UserError
from e3eval.probes.checkpoints import Checkpoint
from e3eval.run import Run
from e3eval.tokenizers import fingerprint


def aligned_prompt_ids(run: Run, problems: dict[str, Any], model: str, flag: str, tokenizer: Any,
                       warnings: list[str]) -> dict[str, list[int]]:  # fmt: skip
    """Each problem's prompt ids, after checking that `model`'s tokenizer is the run's: the same fingerprint, or
    each stored prompt re-tokenizes to its stored ids (with or without the special tokens a tokenizer adds)."""
    recorded = run.record.tokenizer.fingerprint
    same = recorded is not None and recorded == fingerprint(tokenizer)
    ids: dict[str, list[int]] = {}
    for problem in problems.values():
        stored = list(problem.prompt_token_ids) if problem.prompt_token_ids else None
        if stored is None and not problem.prompt:
            raise UserError(
                f"{run.path}: this run has no prompt for problem {problem.problem_id!r}; probes need prompt + "
                "response (import the run with its prompts: a `prompt` field)"
            )
        if stored is None:
            stored = tokenizer(problem.prompt, add_special_tokens=False)["input_ids"]
        elif not same:
            plain = list(tokenizer(problem.prompt or "", add_special_tokens=False)["input_ids"])
            special = list(tokenizer(problem.prompt or "")["input_ids"])
            if stored not in (plain, special):
                raise UserError(
                    f"{flag} {model}: its tokenizer does not match the run's token ids (the prompt of "
                    f"{problem.problem_id!r} {first_difference(plain, stored)}); use a model of the run's "
                    f"tokenizer ({run.record.tokenizer.name_or_path or 'see run.json'})"
                )
        ids[problem.problem_id] = stored
    if not any(p.prompt_token_ids for p in problems.values()):
        warnings.append(f"{run.path}: no stored prompt token ids; prompts were tokenized with {model}'s tokenizer")
    return ids


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def check_tokenizer_files(model: str, flag: str) -> None:
    """A local model folder must carry its tokenizer: the probe checks it against the run's ids (verl's exported
    checkpoints hold one; a bare weights folder does not)."""
    folder = Path(model).expanduser()
    if folder.is_dir() and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise UserError(
            f"{flag} {model}: no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, ...); copy the tokenizer of the "
            "model that generated the run into this folder"
        )


def first_difference(mine: list[int], stored: list[int]) -> str:
    """Where a re-tokenized prompt parts from the stored ids, in words."""
    at = next((i for i, (a, b) in enumerate(zip(mine, stored, strict=False)) if a != b), min(len(mine), len(stored)))
    if at < min(len(mine), len(stored)):
        return f"re-tokenizes to id {mine[at]} at position {at}, where the run stores {stored[at]}"
    return f"re-tokenizes to {len(mine)} ids, the run stores {len(stored)} (the first {at} agree)"


def check_vocab(model: Any, tokenizer: Any, ref: Any, run: Run, checkpoint: Checkpoint) -> None:
    vocab = run.record.tokenizer.vocab_size
    size = len(tokenizer)
    if vocab is not None and int(vocab) != size:
        raise UserError(f"--model {checkpoint.model}: its tokenizer has {size} tokens, the run's has {vocab}")
    if size > model.vocab_size:
        raise UserError(f"--model {checkpoint.model}: {size} tokens but only {model.vocab_size} logits")
    if ref is not None and ref.vocab_size != model.vocab_size:
        raise UserError(
            f"--ref {ref.name} has a vocabulary of {ref.vocab_size}, --model {checkpoint.model} one of "
            f"{model.vocab_size}: KL needs the same vocabulary"
        )
