"""What every engine offers: generation with sampling settings, and choice probabilities."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass

from humpback.core.keys import content_key

log = logging.getLogger(__name__)


class ChoiceReader(ABC):
    """p(choice) right after a forced answer start, for each conversation."""

    @abstractmethod
    def probabilities(self, conversations: list[list[dict]], on_batch=None) -> list[list[float]]:
        """p(choice) for each conversation, renormalised over the choices, in input order."""


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 128
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def request_seed(seed: int, index: int) -> int:
    """A seed per request (engines that seed requests one by one): stable and independent of batching."""
    return int(content_key(f"{seed}:{index}", length=8), 16) >> 1


class GenerationEngine(ABC):
    name: str = "abstract"

    @abstractmethod
    def generate(self, conversations: list[list[dict]], sampling: Sampling,
                 on_batch: Callable[[int], None] | None = None) -> list[str]:
        """One completion per conversation, in the same order; ``on_batch(n)`` after each batch."""
