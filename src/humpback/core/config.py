"""The machinery of params.yaml: one section model per step, loaded and checked here.

Every step owns its section's model beside its code (``train/config.py``, ``curate/config.py``,
...), so a stage depends on the code of the sections it reads and nothing else: an edit to the
judge's settings reruns evaluate@m, not the trainings. A stage loads its sections with
:func:`load_sections`; ``humpback.params`` assembles every section for the whole-file check. Every
model has ``extra="forbid"``, so a typo is an error, not a silently ignored knob, and pydantic's
errors become one message per problem that names the dotted key, what is allowed and what was given.
The defaults are the offline CPU demo (params.yaml holds exactly them; a test says so).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    create_model,
)

PositiveInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


class ConfigError(ValueError):
    """params.yaml is missing, unreadable or invalid; the message names the key."""


class Section(BaseModel):
    """A params section (or part of one): unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Loaded(BaseModel):
    """Sections validated from one params file, which they remember as written."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    _written: dict = PrivateAttr(default_factory=dict)  # the mapping it was parsed from

    def as_written(self) -> dict:
        """The params as the file wrote them (before defaults), e.g. for an MLflow run's params."""
        return self._written


class RayConfig(Section):
    """Where augment, score@i and answer@m run their missing shards (:mod:`humpback.core.cluster`).

    Not part of any shard key or DVC params: where a shard is computed does not change it."""

    # null: $RAY_ADDRESS where it is set, else in the stage's own process (no Ray). "local": start a
    # Ray on this machine (replicas over its GPUs); "auto", "ray://head:10001": a running cluster.
    address: str | None = None
    workers: PositiveInt | None = None  # replicas; null = as many as the cluster's GPUs (or CPUs) hold
    # GPUs per replica; null = vllm.tensor_parallel_size (1 for hf) on a cluster with GPUs, else 0
    gpus_per_worker: Annotated[float, Field(ge=0)] | None = None
    cpus_per_worker: Annotated[float, Field(gt=0)] = 1.0
    # How often Ray restarts a lost replica (its units in flight are retried); null = Ray Data's
    # default. Lost beyond that, the stage keeps what is written and exits non-zero.
    max_restarts: Annotated[int, Field(ge=-1)] | None = None


class Iteration(Section):
    curator: str  # the model that scores the candidates in this iteration: m{i-1}


def _quoted_keys(value):
    if isinstance(value, dict):
        bare = [k for k in value if not isinstance(k, str)]
        if bare:
            raise ValueError(f"quote the iteration numbers ('{bare[0]}': {{curator: ...}}): "
                             "DVC's foreach silently skips numeric keys")
    return value


def _chain(value: dict) -> dict:
    keys = sorted(value)
    if keys != list(range(1, len(keys) + 1)):
        raise ValueError(f"iterations must be numbered 1..n without gaps, got {keys}")
    for i in keys:
        if value[i].curator != f"m{i - 1}":
            raise ValueError(f"iterations.{i}.curator must be m{i - 1} (M_{i-1} curates iteration {i}), "
                             f"got {value[i].curator!r}")
    return value


# The `iterations` section: iteration i is curated by M_{i-1} and trains M_i ({"1": {curator: m0}, ...}).
Iterations = Annotated[dict[PositiveInt, Iteration], BeforeValidator(_quoted_keys), AfterValidator(_chain)]
ITERATIONS = (Iterations, {1: Iteration(curator="m0"), 2: Iteration(curator="m1")})


def _union_members(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) or () for m in _union_members(arg)]


def _walk(loc: tuple, root: type[BaseModel]) -> tuple[str, type[BaseModel] | None]:
    """Readable key for a pydantic location, and the model found at its end.

    pydantic puts list indices and the tag of a discriminated union into the location;
    the key shows indices as ``[i]`` and drops the tag (``corpus.sources[0].path``).
    """
    key, current = "", root
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
            continue
        fields = current.model_fields if current is not None else {}
        if part in fields:
            key += f".{part}" if key else part
            members = _union_members(fields[part].annotation)
            current = members[0] if len(members) == 1 else None
            if current is None and members:
                current = _TagSelector(members)
            continue
        if isinstance(current, _TagSelector):
            current = current.pick(part)
            continue
        key += f".{part}" if key else str(part)
        current = None
    return key, current if isinstance(current, type) else None


class _TagSelector:
    """Stands for a discriminated union until the location names the member's tag."""

    def __init__(self, members: list[type[BaseModel]]):
        self.members = members
        self.model_fields: dict = {}

    def pick(self, tag: str) -> type[BaseModel] | None:
        for m in self.members:
            if tag in getattr(m.model_fields.get("type"), "annotation", type(None)).__args__:
                return m
        return None


def _describe(err: dict, source: str, root: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        key, _ = _walk(loc, root)
        _, parent = _walk(loc[:-1], root)
        hint = f" (allowed: {', '.join(sorted(parent.model_fields))})" if parent else ""
        return f"{source}: unknown key '{key}'{hint}"
    key, _ = _walk(loc, root)
    got = err.get("input")
    got_txt = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    where = f"'{key}'" if key else "top level"
    return f"{source}: {where}: {err['msg']}{got_txt}"


def validate(model: type[Loaded], data: dict | None, source: str = "params.yaml") -> Loaded:
    """``data`` (a params mapping) as ``model``; :class:`ConfigError` naming every bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(data).__name__}")
    try:
        loaded = model.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(e, source, model) for e in exc.errors()]
        raise ConfigError("invalid parameters:\n  " + "\n  ".join(lines)) from None
    loaded._written = data
    return loaded


def load_sections(data: dict, source: str = "params.yaml", **sections: type[Section] | tuple) -> Loaded:
    """The sections a stage reads, each by its own model (a class, or ``(annotation, default)``):
    ``load_sections(data, train=TrainConfig, iterations=ITERATIONS).train``. Other sections are
    not looked at (``humpback.params`` checks the whole file)."""
    fields = {name: spec if isinstance(spec, tuple) else (spec, spec()) for name, spec in sections.items()}
    return validate(create_model("StageParams", __base__=Loaded, **fields), data, source)


def read_params(path: str | Path, text: str | None = None) -> dict:
    """A params file (or a profile, or its ``text``) as the mapping it writes, not yet validated:
    the one place that parses params YAML."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data or {}


def flatten(obj, prefix: str = "") -> dict[str, object]:
    """Nested mappings as dotted keys: {"a": {"b": 1}} -> {"a.b": 1} (metrics printing, MLflow params)."""
    if isinstance(obj, dict):
        return {key: value for k, v in obj.items() for key, value in flatten(v, f"{prefix}.{k}" if prefix else str(k)).items()}
    return {prefix: obj}
