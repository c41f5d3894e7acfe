"""Profiles: overlays on the defaults, applied by writing params.yaml.

The defaults (config.py, which params.yaml mirrors) are the offline demo. A profile
(``pipeline/profiles/<name>.yaml``) holds only what differs from them. Applying it resets every value
of params.yaml to its default and then sets the profile's values: mappings merge key by key, lists
and scalars replace. params.yaml keeps its comments and stays the one file that `dvc repro`,
`dvc exp run -S` and `dvc params diff` read.
"""

from __future__ import annotations

import io
from pathlib import Path

from pydantic import BaseModel

from humpback.core.config import ConfigError, flatten, read_params
from humpback.core.files import atomic_write
from humpback.params import Config, load_config, parse_config

PROFILES_DIR = Path("pipeline/profiles")


DEFAULTS_NAME = "demo"  # the defaults themselves: an empty overlay


def overlay_of(name: str, profiles_dir: str | Path = PROFILES_DIR) -> tuple[str, dict]:
    """(where it came from, overlay) of a profile name, a .yaml path, or ``demo`` (the defaults)."""
    if name == DEFAULTS_NAME and not (Path(profiles_dir) / f"{name}.yaml").is_file():
        return "the defaults", {}
    path = profile_path(name, profiles_dir)
    return str(path), read_overlay(path)


def profile_path(name: str, profiles_dir: str | Path = PROFILES_DIR) -> Path:
    """A profile by name (``paper``) or by path (``my/profile.yaml``)."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    path = Path(profiles_dir) / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join([DEFAULTS_NAME, *available(profiles_dir)])
        raise ConfigError(f"no profile '{name}' in {profiles_dir} (available: {known})")
    return path


def available(profiles_dir: str | Path = PROFILES_DIR) -> list[str]:
    return sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))


def read_overlay(path: str | Path) -> dict:
    try:
        return read_params(path)
    except ConfigError as exc:
        raise ConfigError(f"profile: {exc}") from None


def defaults() -> dict:
    """Every parameter at its default, as params.yaml spells it (items of a list of sections, such as
    raw.sources, with their set fields only)."""
    return _dump(Config())


def _dump(section: BaseModel) -> dict:
    out = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            out[name] = _dump(value)
        elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            out[name] = [v.model_dump(mode="json", exclude_defaults=True) | {"type": v.type} for v in value]
        else:
            out[name] = section.model_dump(mode="json", include={name})[name]
    return out


def merge(base: dict, overlay: dict) -> dict:
    """``overlay`` on ``base``: mappings merge key by key; lists and scalars replace."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve(overlay: dict, source: str) -> dict:
    """The full parameters a profile stands for, validated (errors name the profile's keys)."""
    params = merge(defaults(), overlay)
    parse_config(params, source=source)
    return params


def changes(before: dict, after: dict) -> list[tuple[str, object, object]]:
    """(dotted key, old, new) for every value that differs."""
    a, b = flatten(before), flatten(after)
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def _assign(node, target):
    """Make the round-trip ``node`` (ruamel) equal ``target`` in place, keeping comments on kept keys."""
    for key in [k for k in node if k not in target]:
        del node[key]
    for key, value in target.items():
        if isinstance(value, dict) and isinstance(node.get(key), dict) and value:
            _assign(node[key], value)
        elif key not in node or not _same(node[key], value):
            node[key] = _styled(value)
            _realign_comment(node, key)


COMMENT_COLUMN = 27  # where params.yaml's end-of-line comments start


def _realign_comment(node, key) -> None:
    """A replaced value keeps its comment; put the comment back at the usual column (or just after a
    longer value) instead of where the old value's length had pushed it."""
    entry = node.ca.items.get(key)
    token = entry[2] if entry and len(entry) > 2 else None
    if token is not None:
        token.column = COMMENT_COLUMN


def _styled(value, in_list: bool = False):
    """Lists and mappings of plain values in flow style (``[8, 16]``, ``{r: 16}``), as params.yaml writes
    them; a mapping inside a list (a source) in block style."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, dict):
        node = CommentedMap((k, _styled(v)) for k, v in value.items())
    elif isinstance(value, list):
        node = CommentedSeq(_styled(v, in_list=True) for v in value)
    else:
        return value
    plain = all(not isinstance(v, (dict, list)) for v in (value.values() if isinstance(value, dict) else value))
    if plain and not (in_list and isinstance(value, dict)):
        node.fa.set_flow_style()
    return node


def _represent_float(representer, value: float):
    # 5e-05 is a string to YAML 1.1 readers (PyYAML): always write a mantissa with a dot, 5.0e-05
    text = repr(value)
    if "e" in text and "." not in text.split("e")[0]:
        text = text.replace("e", ".0e", 1)
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def _same(a, b) -> bool:
    # 3 and 3.0 are the same value (keep how params.yaml spells it); true and 1 are not
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def apply(name: str, params_path: str | Path = "params.yaml", profiles_dir: str | Path = PROFILES_DIR) -> list:
    """Write ``params_path`` = defaults + profile ``name``; returns the changes made to it."""
    from ruamel.yaml import YAML  # DVC's own YAML library: keeps params.yaml's comments and layout

    source, overlay = overlay_of(name, profiles_dir)
    target = resolve(overlay, source=source)
    params_path = Path(params_path)
    rt = YAML()
    rt.preserve_quotes = True
    rt.width = 4096  # never re-wrap a line
    rt.indent(mapping=2, sequence=4, offset=2)
    rt.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
    rt.representer.add_representer(float, _represent_float)
    text = params_path.read_text(encoding="utf-8") if params_path.is_file() else ""
    doc = rt.load(text) if text.strip() else None
    before = read_params(params_path, text)
    if doc is None:
        doc = target
    else:
        _assign(doc, target)
    buf = io.StringIO()
    rt.dump(doc, buf)
    with atomic_write(params_path) as tmp:
        tmp.write_text(buf.getvalue(), encoding="utf-8")
    load_config(params_path)
    return changes(before or {}, target)
