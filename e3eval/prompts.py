"""Prompt templates and rendering: from a problem to the exact prompt text and token ids a model sees.

Templates (the `{problem}` placeholder is replaced literally, so LaTeX braces are safe):
- `aime`: the e3 paper's evaluation prompt (App. D, Box D.1);
- `deepscaler`: the DeepScaleR suffix used for the e3 training data;
- `raw`: the problem text alone.
By default the user message is wrapped in the model's own chat template (`apply_chat_template` with the generation
prompt; `thinking` sets `enable_thinking` for templates that read it, such as Qwen3's), with an optional system
prompt. `chat=False` sends the template text as is (base models). The rendered text, its token ids and the template
name are stored with the run; this module does not generate anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from e3eval.errors import UserError
from e3eval.records import Problem

TEMPLATES: dict[str, str] = {
    "aime": (
        "You will be given a math problem. Solve the problem step by step. Output your final answer in the form of "
        "\\boxed{your answer}. Problem: {problem}"
    ),
    "deepscaler": "{problem} Let's think step by step and output the final answer within \\boxed{}.",
    "raw": "{problem}",
}


@dataclass(frozen=True)
class PromptSpec:
    template: str = "aime"
    chat: bool = True
    thinking: bool | None = None
    system: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "template_text": TEMPLATES.get(self.template),
            "chat": self.chat,
            "thinking": self.thinking,
            "system": self.system,
        }


def check_template(name: str) -> str:
    if name not in TEMPLATES:
        raise UserError(f"unknown prompt template {name!r}; choose one of {', '.join(TEMPLATES)}")
    return name


def render_prompt(problem: Problem, spec: PromptSpec, tokenizer: Any) -> tuple[str, list[int]]:
    """The prompt text for `problem` and its token ids under `spec`."""
    content = TEMPLATES[check_template(spec.template)].replace("{problem}", problem.problem)
    if not spec.chat:
        return content, list(tokenizer(content)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise UserError("the tokenizer has no chat template: pass --no-chat to send the plain template text")
    messages = ([{"role": "system", "content": spec.system}] if spec.system else []) + [
        {"role": "user", "content": content}
    ]
    extra = {} if spec.thinking is None else {"enable_thinking": spec.thinking}
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    # The template already spells out every special token; encoding must not add a second BOS.
    return text, list(tokenizer(text, add_special_tokens=False)["input_ids"])
