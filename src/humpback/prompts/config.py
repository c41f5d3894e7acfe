"""The `prompts` section: the backward template and the paper's seed and web tags."""

from __future__ import annotations

from typing import Literal

from humpback.core.config import Section


class PromptsConfig(Section):
    # null = the packaged template (src/humpback/prompts/backward.txt); else a file with {response}
    backward: str | None = None
    # The paper's tags (§2.3): appended to seed examples and to augmented examples respectively.
    seed_tag: str = "Answer in the style of an AI Assistant."
    web_tag: str = "Answer with knowledge from web search."
    # user_suffix: the tag follows the instruction after a blank line (the paper "appends a sentence");
    # system: the tag is the system message (replacing the chat template's default one).
    tag_placement: Literal["user_suffix", "system"] = "user_suffix"
