"""The `scaling` section: the paper's data-efficiency analysis (Fig. 4, Table 3)."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from humpback.core.config import PositiveInt, Section


class ScalingConfig(Section):
    # The paper's data-efficiency analysis (Fig. 4, Table 3): for each N in `sizes` the stages
    # scale_train@N, scale_answer@N and scale_evaluate@N train on N curated pairs, answer and judge,
    # and `scaling` fits win rate = alpha * ln N + C. Off (no such stage) while `sizes` is empty:
    # it trains one model per size.
    sizes: list[PositiveInt] = []  # demo: [8, 16, 32]; the paper: 100, 800, 1,600 ... 51,200
    iteration: PositiveInt | None = None  # whose curated set A_k^(i); null = the last iteration
    with_seed: bool = False  # also train on the seed pairs (the paper's curves use the dataset alone)
    # optimizer steps per size (the paper's Table 18: 100 -> 30, 800 -> 300, ...); unlisted sizes use
    # train.max_steps / train.epochs. The batch size follows train (8 under 3,000 examples, else 32).
    steps: dict[PositiveInt, PositiveInt] = {}

    @model_validator(mode="before")
    @classmethod
    def _no_switch(cls, data):
        if isinstance(data, dict) and "enabled" in data:
            raise ValueError("scaling.enabled is gone: the sizes are the switch. List at least two in "
                             "scaling.sizes to run the analysis (one stage per size), or leave them empty ([]) for none")
        return data

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value):
        if value and (len(value) < 2 or sorted(set(value)) != list(value)):
            raise ValueError("sizes must be empty (no scaling analysis) or at least two increasing, distinct numbers")
        return value

    def curated_iteration(self, iterations) -> int:
        """The iteration whose curated set the scaling models train on."""
        return self.iteration or max(iterations)
