"""One-off preparation of an image-folder dataset into memory-mapped uint8 arrays.

    python -m flexnet.data.prepare dataset=imagenet dataset.root=/data/tree dataset.resolution=64 [dataset.prepared=/fast/disk]

Takes the same overrides as `python -m flexnet` (composed from the same conf/ folder); only the
dataset group matters. Prints where the arrays went; jobs then run with the same
dataset.root / dataset.resolution (and dataset.prepared, if given).
"""
from __future__ import annotations

import sys
import time

from ..errors import ConfigError
from .files import data_root


def main(argv: list[str]) -> int:
    from ..config import compose
    from .imagefolder import prepare_imagefolder, prepared_dir
    from .transforms import check_resolution

    try:
        d = compose(argv)["dataset"]
        if d.get("name") != "imagenet":
            raise ConfigError(f"dataset={d.get('name')!r}: only dataset=imagenet (an image-folder tree) needs "
                              f"preparing; the others are read directly")
        if d.get("resolution") is None:
            raise ConfigError("dataset.resolution=None: give the resolution to prepare, e.g. dataset.resolution=64")
        res = check_resolution(d["resolution"])
        root = data_root(d.get("root"))
        out = prepared_dir(root, d.get("prepared"), res)
        t0 = time.perf_counter()
        prepare_imagefolder(root, res, out, test_fraction=d.get("test_fraction", 0.1),
                            split_seed=d.get("split_seed", 0), workers=int(d.get("workers") or 0))
        print(f"prepared {root} at {res}x{res} in {time.perf_counter() - t0:.1f}s -> {out}")
        return 0
    except ConfigError as e:
        print(f"flexnet: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # hydra override errors and the like: still one line
        if type(e).__module__.startswith(("hydra", "omegaconf")):
            print(f"flexnet: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
