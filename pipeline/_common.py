"""Shared options of the stage scripts: every stage reads params.yaml through the typed config."""

from __future__ import annotations

import sys

import click

from humpback.config import ConfigError, load_config
from humpback.io import setup_logging

params_option = click.option(
    "--params", "params_path", default="params.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="Parameters file to read.",
)


def load_params(path: str):
    """Typed config, or a clean exit naming every bad key (no traceback for a typo)."""
    setup_logging()
    try:
        return load_config(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
