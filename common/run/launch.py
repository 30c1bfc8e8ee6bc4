"""Starting a recipe: from the command line or from Python, one run or several (--kfold folds, --search trials).

A recipe's `main(config)` trains, evaluates and saves one run. `launch(main, config)` runs it once, or once per
fold or trial with a config derived from `config`; `command_line(main, DEFAULTS)` is what `python recipe.py`
runs: flags -> config -> launch, with bad input ending as one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys

from common.config import RunConfig, parse
from common.run import kfold, search
from common.run.folders import check_output_dir, output_lock
from common.run.output import remove_stale_staging
from common.runtime import run_cli

STOPPED = (
    "; --output-dir is as it was before this run (--resume continues from the last checkpoint, if --save-steps "
    "wrote one)"
)


def launch(main, config: RunConfig):
    """main(config) once, or through common.run.kfold / common.run.search when the config asks for several runs;
    --output-dir is held for this run alone until it ends (a second run into it refuses at once)."""
    config.check()
    folds = config.runs.kfold
    with output_lock(config.output.output_dir):
        if not (folds or config.runs.search):
            return main(config)
        remove_stale_staging(config.output.output_dir)
        check_output_dir(config.output.output_dir, config.output.overwrite)
        return kfold.run(main, config) if folds else search.run(main, config)


def from_argv(main, defaults: RunConfig, argv: list[str] | None = None):
    """launch() with `defaults` changed by command-line words (and a --config file they name)."""
    description = sys.modules[main.__module__].__doc__
    return launch(main, parse(defaults, argv, description))


def command_line(main, defaults: RunConfig, argv: list[str] | None = None) -> None:
    """`python recipe.py ...`: bad input (UserError) ends with one line on stderr and exit status 2."""
    run_cli(lambda words: from_argv(main, defaults, words), argv, STOPPED)
