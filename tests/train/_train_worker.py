"""Runs one training in its own process (the resume and DDP tests kill or launch it):
python _train_worker.py SPEC.json, where SPEC holds base, examples, the train config, out and result."""

import json
import sys

from humpback.core.logs import setup_logging
from humpback.train.config import TrainConfig
from humpback.train.recipe import train

if __name__ == "__main__":
    setup_logging()
    spec = json.loads(open(sys.argv[1], encoding="utf-8").read())
    result = train(spec["base"], spec["examples"], TrainConfig(**spec["train"]), spec["out"], progress=False,
                   name="worker")
    if result is not None:  # the main process only
        with open(spec["result"], "w", encoding="utf-8") as fh:
            json.dump({"loss_history": result.loss_history, "processes": result.processes,
                       "resumed_from_step": result.resumed_from_step, "batch_size": result.batch_size}, fh)
