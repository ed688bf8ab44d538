"""Progress inside an attempt (progress=auto|bar|log|false) and its per-epoch W&B curves."""
from __future__ import annotations

import json
import logging

import pytest

from conftest import TINY, compose


def _run(tmp_path, overrides):
    """One size (search=fixed at n=32), up to 4 attempts of a few epochs: about a second."""
    from flexnet.pipeline import run_job

    return run_job(compose(TINY + ["labeling=random_labels", "search=fixed", "search.n=32", "curve=false", *overrides]),
                   tmp_path / "run")


def test_heartbeat_lines_in_the_log(tmp_path, monkeypatch, caplog):
    """progress=log: a line with epoch, step, loss, accuracy and lr at most every HEARTBEAT_S seconds
    of an attempt (0 here, so every epoch of this tiny search qualifies)."""
    from flexnet import oracle

    monkeypatch.setattr(oracle, "HEARTBEAT_S", 0.0)
    with caplog.at_level(logging.INFO, logger="flexnet"):
        res = _run(tmp_path, ["progress=log"])
    beats = [r.getMessage() for r in caplog.records if "so far" in r.getMessage()]
    # an attempt resumed at the ladder's next cap has a line per cap, its epochs counted from the start
    last = {}
    for line in (tmp_path / "run" / "fits.jsonl").read_text().splitlines():
        f = json.loads(line)
        last[(f["n"], f["attempt"])] = f
    assert len(beats) == sum(f["epochs"] for f in last.values()) == res["cost_sample_epochs"] / 32  # one per epoch
    first = beats[0]
    assert first.startswith("n=32 ") and "attempt 0: epoch 1, step " in first
    for word in ("loss ", "acc ", "lr "):
        assert word in first


def test_heartbeat_is_rate_limited_and_quiet_with_false(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="flexnet"):
        _run(tmp_path / "a", ["progress=log"])  # HEARTBEAT_S = 10 s: no attempt of this search lasts that long
        _run(tmp_path / "b", ["progress=false"])
    assert not [r for r in caplog.records if "so far" in r.getMessage()]


def test_bar_on_stderr(tmp_path, capsys):
    res = _run(tmp_path, ["progress=bar"])
    err = capsys.readouterr().err
    assert "n=32 attempt 0" in err and "ep" in err and "loss=" in err and res["fits"] >= 1


@pytest.mark.parametrize("value", ["sometimes", "1"])
def test_bad_progress_value_is_one_line(value):
    from flexnet.errors import ConfigError
    from flexnet.schema import validate_config

    with pytest.raises(ConfigError) as e:
        validate_config(compose([f"progress={value}"]))
    assert str(e.value).startswith("progress=") and "false (quiet)" in str(e.value)


def test_progress_does_not_change_the_config_hash():
    from flexnet.records import result_hash

    assert result_hash(compose(["progress=false"])) == result_hash(compose([]))
