"""Prompt templates (as files) and the chat messages every model is trained and prompted with.

Keeping message construction here means the backward model is prompted at augmentation time with
exactly the messages it was trained on, and forward models see the tags where they were trained.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from humpback.config import PromptsConfig

PLACEHOLDER = "{response}"
INSTRUCTION_PLACEHOLDER = "{instruction}"
REQUIRED = {"backward": (PLACEHOLDER,), "rate": (INSTRUCTION_PLACEHOLDER, PLACEHOLDER)}


def read_template(name: str, path: str | None = None) -> str:
    """A packaged template (``prompts/<name>.txt``) or the user's file, checked for its placeholders."""
    if path is None:
        text = resources.files("humpback.prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")
        source = f"packaged prompts/{name}.txt"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise FileNotFoundError(f"prompts.{name}: cannot read '{path}': {exc.strerror}") from None
        source = path
    missing = [p for p in REQUIRED.get(name, ()) if p not in text]
    if missing:
        raise ValueError(f"{source}: the template must contain the placeholder(s) {', '.join(missing)}")
    return text.strip()


def backward_messages(response: str, template: str) -> list[dict]:
    """The backward model's input: the response inside the template (no str.format: texts hold braces)."""
    return [{"role": "user", "content": template.replace(PLACEHOLDER, response.strip())}]


def rating_messages(instruction: str, response: str, template: str) -> list[dict]:
    """The curator's input: the pair inside the rating template (placeholders filled in one pass)."""
    filled = template.replace(INSTRUCTION_PLACEHOLDER, "\x00I\x00").replace(PLACEHOLDER, "\x00R\x00")
    filled = filled.replace("\x00I\x00", instruction.strip()).replace("\x00R\x00", response.strip())
    return [{"role": "user", "content": filled}]


def forward_messages(instruction: str, tag: str | None, cfg: PromptsConfig) -> list[dict]:
    """A forward model's input: the instruction, with the tag placed as ``cfg.tag_placement`` says."""
    if not tag:
        return [{"role": "user", "content": instruction}]
    if cfg.tag_placement == "system":
        return [{"role": "system", "content": tag}, {"role": "user", "content": instruction}]
    return [{"role": "user", "content": f"{instruction}\n\n{tag}"}]
