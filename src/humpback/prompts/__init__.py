"""Prompt templates (as files) and the chat messages every model is trained and prompted with.

Keeping message construction here means the backward model is prompted at augmentation time with
exactly the messages it was trained on, and forward models see the tags where they were trained.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from humpback.prompts.config import PromptsConfig

PLACEHOLDER = "{response}"
INSTRUCTION_PLACEHOLDER = "{instruction}"
JUDGE_PLACEHOLDERS = ("{instruction}", "{output_a}", "{output_b}")
REQUIRED = {"backward": (PLACEHOLDER,), "rate": (INSTRUCTION_PLACEHOLDER, PLACEHOLDER), "judge": JUDGE_PLACEHOLDERS,
            "rewrite": (INSTRUCTION_PLACEHOLDER, PLACEHOLDER)}
# the params.yaml key that names each template's file: what an error about the file should point to
KEYS = {"backward": "prompts.backward", "rate": "curate.template", "judge": "evaluate.judge.template",
        "rewrite": "rewrite.template"}


def read_template(name: str, path: str | None = None) -> str:
    """A packaged template (``prompts/<name>.txt``) or the user's file, checked for its placeholders."""
    if path is None:
        text = resources.files("humpback.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
        source = f"packaged prompts/{name}.txt"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise FileNotFoundError(f"{KEYS[name]}: cannot read '{path}': {exc.strerror}") from None
        source = f"{KEYS[name]}: {path}"
    missing = [p for p in REQUIRED.get(name, ()) if p not in text]
    if missing:
        raise ValueError(f"{source}: the template must contain the placeholder(s) {', '.join(missing)}")
    return text.strip()


def backward_messages(response: str, template: str) -> list[dict]:
    """The backward model's input: the response inside the template (no str.format: texts hold braces)."""
    return [{"role": "user", "content": template.replace(PLACEHOLDER, response.strip())}]


def fill(template: str, values: dict[str, str]) -> str:
    """Replace ``{name}`` placeholders in one pass: a value that itself contains ``{response}`` or
    braces stays as it is (no str.format: texts hold braces)."""
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], template)


def rating_messages(instruction: str, response: str, template: str) -> list[dict]:
    """The curator's input: the pair inside the rating template."""
    return [{"role": "user", "content": fill(template, {"instruction": instruction.strip(), "response": response.strip()})}]


def rewrite_messages(instruction: str, segment: str, template: str) -> list[dict]:
    """The rewriting model's input: the generated instruction and the original segment it answers."""
    return [{"role": "user", "content": fill(template, {"instruction": instruction.strip(), "response": segment.strip()})}]


def judge_messages(instruction: str, output_a: str, output_b: str, template: str) -> list[dict]:
    """The judge's input: a request and two answers, shown as A and B."""
    values = {"instruction": instruction.strip(), "output_a": output_a.strip(), "output_b": output_b.strip()}
    return [{"role": "user", "content": fill(template, values)}]


def forward_messages(instruction: str, tag: str | None, cfg: PromptsConfig) -> list[dict]:
    """A forward model's input: the instruction, with the tag placed as ``cfg.tag_placement`` says."""
    if not tag:
        return [{"role": "user", "content": instruction}]
    if cfg.tag_placement == "system":
        return [{"role": "system", "content": tag}, {"role": "user", "content": instruction}]
    return [{"role": "user", "content": f"{instruction}\n\n{tag}"}]
