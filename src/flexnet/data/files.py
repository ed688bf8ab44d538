"""Where on-disk datasets live, and the one-line errors for missing or unreadable files."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ..errors import ConfigError

ENV_VAR = "FLEXNET_DATA"


def data_root(root: Optional[str] = None) -> Path:
    """dataset.root if given, else $FLEXNET_DATA, else ~/.cache/flexnet/data."""
    if root not in (None, ""):
        return Path(os.path.expanduser(str(root)))
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(os.path.expanduser(env))
    return Path(os.path.expanduser("~")) / ".cache" / "flexnet" / "data"


def missing(name: str, path, fix: str = "dataset.download=true", what: str = "not found") -> ConfigError:
    """The one-line error for a dataset that is not on disk."""
    return ConfigError(f"dataset={name}: {what} at {path}; run with `{fix}` to fetch it, or point "
                       f"dataset.root (or ${ENV_VAR}) at the folder that holds it")


def unreadable(name: str, path, err: BaseException) -> ConfigError:
    msg = " ".join(str(err).split()) or type(err).__name__
    return ConfigError(f"dataset={name}: cannot read {path} ({type(err).__name__}: {msg[:200]}); "
                       f"the file is corrupt or not in the expected format")
