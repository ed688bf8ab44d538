#!/usr/bin/env python
"""`make reproduce`: run the CPU-scale experiment presets, report each sweep, write REPRODUCTION.md.

A thin command over flexnet.study (its docstring gives the usage: --out, --only, --tiny, --skip-run,
--fresh).
"""
from __future__ import annotations

import sys

# the presets, the runner and REPRODUCTION.md's writer live in the package (flexnet.study); their names
# are re-exported here for the tests and for `python -c 'import ...'` users of this script
from flexnet.study import *  # noqa: F401,F403
from flexnet.study import main

if __name__ == "__main__":
    sys.exit(main())
