#!/usr/bin/env python
"""Run the CPU-scale experiment presets, report each sweep, and write REPRODUCTION.md.

    python scripts/reproduce.py --out REPRODUCTION.md                # the verdict presets (make reproduce)
    python scripts/reproduce.py --only emc_optimizers --only emc_activations
    python scripts/reproduce.py --tiny --only zhang_corruption        # tiny budgets (tests, smoke runs)
    python scripts/reproduce.py --skip-run                           # re-aggregate existing sweep dirs

Each preset is one or more Hydra multiruns, ``python -m flexnet +experiment=<preset> -m
hydra.sweep.dir=<root>/<preset>``, all sharing the cores through flexnet.taskpool (--jobs at once,
longest first); then ``python -m flexnet.report <root>/<preset>`` writes its ``report/``. A sweep dir
that holds jobs is resumed (each job replays its fits.jsonl journal); ``--fresh`` deletes it first.
Verdicts come from the fixed rules of flexnet.analysis (RULES_TEXT, stated in REPRODUCTION.md); a
preset that fails or is missing gives "inconclusive" with the reason.
"""
from __future__ import annotations

import sys

# the presets, the runner and REPRODUCTION.md's writer live in the package (flexnet.study); their names
# are re-exported here for the tests and for `python -c 'import ...'` users of this script
from flexnet.study import *  # noqa: F401,F403
from flexnet.study import main

if __name__ == "__main__":
    sys.exit(main())
