"""The skeleton every stage script shares: its params (the whole file checked, its own sections
loaded), one-line errors for bad params and full disks, and the exit that skips teardown."""

from __future__ import annotations

import atexit
import errno
import os
import re
import sys
from pathlib import Path

import click

from humpback.core.config import ConfigError, load_sections, read_params
from humpback.core.incomplete import EXIT_INCOMPLETE, Incomplete
from humpback.core.logs import setup_logging

params_option = click.option(
    "--params", "params_path", default="params.yaml", show_default=True,
    type=click.Path(dir_okay=False), help="Parameters file to read.",
)


# Resources that run out or are refused while a stage writes: said in one line with the path and
# what to do, not a traceback (every output is written to a temp file and renamed, so nothing
# partial is left looking finished, and finished shards are kept for the rerun).
_RESOURCE_ERRORS = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free space within your disk quota",
    errno.EFBIG: "raise the file size limit (ulimit -f) or free space",
    errno.EROFS: "the file system is read-only: run where the outputs can be written",
    errno.EACCES: "make the folder writable for this user",
    errno.EPERM: "make the folder writable for this user",
}
_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-\d+$")


def resource_error_message(exc: OSError) -> str | None:
    """The one-line explanation of a write that ran out of a resource; None for other errors."""
    if exc.errno not in _RESOURCE_ERRORS:
        return None
    path = Path(exc.filename) if exc.filename else None
    if path is not None and (m := _TEMP_NAME.match(path.name)):
        path = path.with_name(m["name"])  # the output being written, not its temp file
    return (f"error: cannot write {path or 'an output'}: {exc.strerror or os.strerror(exc.errno)} "
            f"({errno.errorcode[exc.errno]}); {_RESOURCE_ERRORS[exc.errno]}, then rerun the stage "
            "(finished work is kept; nothing partial was left under an output's name)")


def _stage_excepthook(kind, exc, tb) -> None:
    message = resource_error_message(exc) if isinstance(exc, OSError) else None
    if message is None:
        sys.__excepthook__(kind, exc, tb)
    else:
        click.echo(message, err=True)


def run_stage(command) -> None:
    """Run a stage's click command, then leave without Python's own teardown. Unloading torch,
    transformers, pandas and MLflow module by module takes 2-3 s at every stage's end (about 50 s of
    the demo's 20 stages) and writes nothing: by then every output is written and renamed and every
    MLflow run ended. Exit handlers still run (MLflow, logging, temp folders), and the standard
    streams are flushed. Unfinished work (:class:`~humpback.core.incomplete.Incomplete`) is one line and
    exit status 75, so DVC locks nothing and the next `dvc repro` finishes it; any other uncaught
    exception leaves the usual way, traceback and all."""
    try:
        command()
        code = 0
    except SystemExit as exc:
        code = exc.code
    except Incomplete as exc:
        click.echo(f"incomplete: {exc}", err=True)
        code = EXIT_INCOMPLETE
    if code is None:
        code = 0
    elif not isinstance(code, int):  # sys.exit("message")
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def load_params(path: str, **sections):
    """The stage's own ``sections`` (name=model, as :func:`~humpback.core.config.load_sections`),
    after a check of the whole file, so a typo in any section fails before any stage works; or a
    clean exit naming every bad key (no traceback for a typo). Also turns a full disk or a
    read-only output folder into one line that names the path."""
    from humpback.params import parse_config

    setup_logging()
    sys.excepthook = _stage_excepthook
    try:
        data = read_params(path)
        parse_config(data, source=path)
        return load_sections(data, source=path, **sections)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
