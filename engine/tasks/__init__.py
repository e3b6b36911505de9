"""One module per `seqfuse train --data NAME` task.

Each module has MODELS (the --model choices it accepts) and run(args, en) -> (model, history,
results): it loads its bundled data, builds and trains the model, prints its report and
returns the numbers written to --history. A module may set DEFAULTS, {option: value}, for
the options it wants other than the command's defaults (the cli fills in those not given);
--model defaults to the first of its MODELS.
"""
from __future__ import annotations

import importlib

TASKS = ("movie_reviews", "jfk_weather", "pride_and_prejudice", "japanese_vowels", "vowel_pairs",
         "translation")


def names() -> list[str]:
    return list(TASKS)


def get(name):
    """The task module for `name`."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASKS)}")
    return importlib.import_module(f"{__name__}.{name}")


def model_choices() -> list[str]:
    """Every --model any task accepts, in first-seen order."""
    seen = {}
    for name in TASKS:
        seen.update(dict.fromkeys(get(name).MODELS))
    return list(seen)
