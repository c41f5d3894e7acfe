"""Logging: the stages' format, and exceptions said in one line."""

from __future__ import annotations

import contextlib
import logging


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for handler in logging.getLogger().handlers:  # libraries that set their loggers to DEBUG (Ray Data's
        handler.setLevel(level)  # usage probes log tracebacks there) print through ours at our level
    # third-party chatter that says nothing about our data
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def exception_gist(exc: BaseException, sentences: int = 3) -> str:
    """An exception in one line: its type and the first sentences of its message (Ray's run long)."""
    parts = " ".join(str(exc).split()).split(". ")
    short = ". ".join(parts[:sentences]) + ("." if len(parts) > sentences else "")
    return f"{type(exc).__name__}: {short[:400]}"


@contextlib.contextmanager
def tracebacks_as_one_line(*logger_names: str):
    """Within the block, log records that carry an exception reach the terminal as one line (the
    message and the exception's type and first line), not a traceback: for libraries that log a
    failure with its traceback (alpaca_eval's failed request, Ray Data's lost worker) before the
    stage says in one line what is missing. Handlers of the root logger and of ``logger_names``
    that write to a stream; file handlers (Ray's session logs) keep the full traceback."""

    def one_line(record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            record.msg = f"{record.getMessage()} ({exception_gist(record.exc_info[1])})"
            record.args, record.exc_info, record.exc_text = None, None, None
        return True

    handlers = [h for name in ("", *logger_names) for h in logging.getLogger(name).handlers
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    for handler in handlers:
        handler.addFilter(one_line)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(one_line)
