"""Work left unfinished for a reason outside the data: not done, so never recorded as done.

A stage whose work depends on something beyond its inputs (a judge endpoint, Ray workers, an engine
that errors on one request) can finish only part of it. It keeps every finished piece (shards,
verdicts), says in one line how much is missing and why, and exits with :data:`EXIT_INCOMPLETE`:
DVC records nothing for a failed command, so the next plain ``dvc repro`` runs the stage again and
it does only what is missing.

Outcomes the data determines are not failures: a local model's unparseable rating (counted by
select), a generation dropped by hygiene (counted by augment) or a tie between identical answers
would be the same on every rerun, so they are counted results, and the stage completes.
"""

from __future__ import annotations

EXIT_INCOMPLETE = 75  # EX_TEMPFAIL (sysexits.h): "try again later"


class Incomplete(RuntimeError):
    """Raised with a one-line message: what is missing, why, and that a rerun does the rest."""
