"""The EMC searches over a fit oracle, by option name (`search.name`), and `search.trials`.

`SEARCHES` maps an option name to its strategy: bisect.py, linear.py, fixed.py (file name = option
name), all built on base.py (`Attempt`, `SearchResult`, the memo). trials.py runs T searches in
lockstep for `search.trials > 1`. Importing this package registers every strategy.
"""
from .base import SEARCHES, Attempt, SearchResult
from .bisect import bisect_search
from .fixed import fixed_search
from .linear import linear_search
from .trials import run_trials

__all__ = ["SEARCHES", "Attempt", "SearchResult", "bisect_search", "fixed_search", "linear_search", "run_trials"]
