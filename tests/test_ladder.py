"""The ladder of caps (train.caps): exact resume of a capped attempt, and reading lower caps off an attempt.

Real training on CPU: a small MLP on random labels it cannot fit within the smaller cap."""
from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from flexnet.fit.loop import Budget, Checks, Recipe, train_to_minimum
from flexnet.optim import build_procedure


def _problem(n=96, d=12, k=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, k, (n,), generator=g)


def _model(seed=0, d=12, k=5, width=12):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, width), nn.ReLU(), nn.Linear(width, k))


def _recipe(caps, opt=None, checks=None):
    opt = opt or {"name": "sgd", "lr": 0.05, "momentum": 0.9, "batch_size": 16}
    return Recipe(build_procedure(opt, {"name": "none"}), Budget(caps=list(caps)), checks or Checks(patience=4,
                                                                                                    patience_steps=30))


def _run(caps, cap, resume=None, opt=None, seed=0):
    x, y = _problem()
    model = _model(seed)
    saved = {}
    res = train_to_minimum(model, x, y, _recipe(caps, opt), g=torch.Generator().manual_seed(7), seed=3, cap=cap,
                           resume=resume, on_cap=lambda s: saved.setdefault("state", s))
    return res, saved.get("state"), model


def _roundtrip(state):
    """Through a file, as records.py stores it (weights_only: tensors and plain values only)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("opt", [None, {"name": "adam", "lr": 0.01, "batch_size": 16}])
def test_resumed_attempt_follows_the_trajectory_of_one_given_the_larger_cap(opt):
    caps = [300, 600, 1200]
    short, state, _ = _run(caps, 300, opt=opt)
    assert short.stop_reason == "cap" and short.status == "unverified" and state is not None
    assert short.steps == 300 and short.cap_steps == 300
    resumed, _, m_resumed = _run(caps, 1200, resume=_roundtrip(state), opt=opt)
    full, _, m_full = _run(caps, 1200, opt=opt)
    assert resumed.resumed_from_step == short.steps and full.resumed_from_step is None
    # the same stop, step, loss and accuracy, and the same weights, bit for bit
    for key in ("status", "stop_reason", "steps", "epochs", "train_acc", "train_loss", "lr_final", "lr_decays"):
        assert getattr(resumed, key) == getattr(full, key), key
    for a, b in zip(m_resumed.parameters(), m_full.parameters()):
        assert torch.equal(a, b)
    # the rungs passed are evaluated alike, whether the attempt was capped there or not
    assert resumed.rungs == full.rungs
    assert [r["cap"] for r in full.rungs][:1] == [300]
    assert full.rungs[0]["train_acc"] == short.train_acc


def test_an_attempt_capped_early_is_a_prefix_of_the_longer_one():
    """Nothing in the trajectory depends on the cap: the rung evaluation of the long attempt is the
    short attempt's end point."""
    caps = [150, 300]
    short, _, _ = _run(caps, 150)
    full, _, _ = _run(caps, 300)
    assert full.rungs[0] == short.rungs[0]
    assert short.train_acc == full.rungs[0]["train_acc"]


def test_fixed_policy_takes_one_cap():
    from flexnet.errors import ConfigError

    with pytest.raises(ConfigError, match="train.caps"):
        Budget(policy="fixed", caps=[100, 200]).validate()
    with pytest.raises(ConfigError, match="ascending"):
        Budget(caps=[200, 100]).validate()
    Budget(policy="fixed", caps=[100]).validate()


# ---------------------------------------------------------------- whole jobs on the ladder

import json  # noqa: E402

from conftest import TINY, compose  # noqa: E402

from flexnet.errors import ConfigError  # noqa: E402
from flexnet.pipeline import run_job  # noqa: E402

JOB = [o for o in TINY if not o.startswith("train.caps")] + ["labeling=random_labels", "convergence.hessian=false",
                                                            "search.max_attempts=2"]
NUMBERS = ("emc", "bracket", "emc_by_cap", "budget_stable", "bits_per_param", "n50", "fits", "cost_sample_epochs",
           "emc_cap_steps", "unverified", "train_accuracy", "test_accuracy")


def _lines(d):
    return [json.loads(line) for line in (d / "fits.jsonl").read_text().splitlines()]


def _job(d, caps, *extra):
    return run_job(compose([*JOB, "train.caps=[" + ",".join(map(str, caps)) + "]", *extra]), d)


def test_same_command_gives_the_same_numbers(tmp_path):
    a, b = _job(tmp_path / "a", [30, 60]), _job(tmp_path / "b", [30, 60])
    assert {k: a[k] for k in NUMBERS} == {k: b[k] for k in NUMBERS}
    assert [b_["cap_steps"] for b_ in a["emc_by_cap"]] == [30, 60]
    assert a["emc_by_cap"][0]["emc"] <= a["emc_by_cap"][1]["emc"] == a["emc"]
    prov = a["provenance"]
    assert prov["code_hash"] and prov["torch"] and prov["lr_policy"] == "converge" and prov["threads"] >= 1
    assert "git_commit" in prov and "git_dirty" in prov and prov["flexnet"]


def test_a_longer_ladder_extends_a_finished_job_and_trains_only_the_new_rung(tmp_path):
    """Re-run with one more rung: every journalled attempt is replayed (none retrained), capped ones
    resume from their checkpoints, and the result is the one a job run on the longer ladder from the
    start gets, numbers and cost alike."""
    out = tmp_path / "job"
    first = _job(out, [30, 60])
    before = _lines(out)
    assert any(r["stop_reason"] == "cap" and r["cap_steps"] == 60 for r in before)  # something to resume
    ext = _job(out, [30, 60, 120])
    after = _lines(out)
    assert after[:len(before)] == before  # the journal is only appended to
    new = after[len(before):]
    assert new and all(r["cap_steps"] == 120 for r in new)
    resumed = [r for r in new if r["resumed_from_step"] is not None]
    assert resumed and all(r["resumed_from_step"] >= 60 for r in resumed)
    assert ext["resumed_attempts"] == len(resumed)
    assert ext["replayed_attempts"] == first["fits"]  # every attempt of the first run, from the journal
    assert ext["emc_by_cap"][:2] == first["emc_by_cap"]  # the rungs below are unchanged
    scratch = _job(tmp_path / "scratch", [30, 60, 120])
    for k in ("emc", "bracket", "emc_by_cap", "fits", "cost_sample_epochs"):
        assert ext[k] == scratch[k], k


def test_the_first_rung_is_a_search_at_that_cap_alone(tmp_path):
    ladder, alone = _job(tmp_path / "l", [30, 60]), _job(tmp_path / "a", [30])
    assert ladder["emc_by_cap"][0] == {**alone["emc_by_cap"][0]}
    assert alone["budget_stable"] is None  # one rung: nothing to compare


def test_a_journal_written_by_other_code_is_refused_unless_accepted(tmp_path):
    out = tmp_path / "job"
    _job(out, [30])
    lines = _lines(out)
    (out / "fits.jsonl").write_text("".join(json.dumps({**r, "code_hash": "0123456789abcdef"}) + "\n" for r in lines))
    with pytest.raises(ConfigError, match="other flexnet code.*accept_code_change=true"):
        _job(out, [30])
    again = run_job(compose([*JOB, "train.caps=[30]"]), out, accept_code_change=True)
    assert again["replayed_attempts"] == len(lines)


def test_report_shows_emc_against_the_cap_per_series(tmp_path):
    """Two seeds on the ladder: the report's table lists each rung's mean EMC, its jobs, whether every job
    was budget-stable there, and draws the EMC(C) figure; a job's row carries its EMC by cap."""
    from flexnet.analysis.build import build_report, write_report
    from flexnet.analysis.figures import LADDER_FIGURE

    sweep = tmp_path / "sweep"
    res = [_job(sweep / str(k), [30, 60], f"seed={k}") for k in range(2)]
    rep = write_report(build_report([sweep], out=tmp_path / "rep", n_boot=50))
    (name, pts), = rep.ladder.items()
    assert [p["cap"] for p in pts] == [30, 60] and all(p["jobs"] == 2 for p in pts)
    for k, p in enumerate(pts):
        assert p["emc"] == pytest.approx(sum(r["emc_by_cap"][k]["emc"] for r in res) / 2)
    assert pts[0]["budget_stable"] is None
    assert pts[1]["budget_stable"] == all(r["budget_stable"] for r in res)
    assert (tmp_path / "rep" / LADDER_FIGURE).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (tmp_path / "rep" / "emc.md").read_text()
    assert "EMC against the cap (the ladder" in md
    row = next(r for r in rep.rows if r["job"].endswith("0"))
    assert row["emc_by_cap"] == " ".join(f"{b['cap_steps']}:{b['emc']}" for b in res[0]["emc_by_cap"])


def test_fixed_policy_with_one_cap_replays_its_attempts_as_trained(tmp_path):
    """train.policy=fixed takes one cap, its schedule's length; an extension trains past it, and a fit
    there is a fit: a rerun replays every attempt as it was trained, same result."""
    over = ["train.policy=fixed", "train.max_extensions=2", "train.extension_fraction=1.0"]
    first = _job(tmp_path / "j", [40], *over)
    lines = _lines(tmp_path / "j")
    assert any(r["steps"] > 40 and r["status"] == "fitted" for r in lines)  # fitted in an extension
    again = _job(tmp_path / "j", [40], *over)
    assert again["replayed_attempts"] == len(lines) and len(_lines(tmp_path / "j")) == len(lines)
    for k in ("emc", "bracket", "emc_by_cap", "fits"):
        assert again[k] == first[k], k
