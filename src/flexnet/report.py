"""`python -m flexnet.report DIR [DIR...] [--by KEY ...] [--wandb]`: tables and figures from sweeps.

The documented command (docs/report.md); the report itself is the flexnet.analysis package, its
command line flexnet.analysis.cli.
"""
from .analysis.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
