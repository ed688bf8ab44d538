"""bits_per_param and n50 (capacity.py): checked against closed forms and a known logistic curve."""
from __future__ import annotations

import math

import numpy as np
import pytest

from flexnet.capacity import bits_per_param, channel_information, n50


def test_channel_information_closed_forms():
    assert channel_information(1.0, 10) == pytest.approx(math.log2(10))
    assert channel_information(0.1, 10) == 0.0 and channel_information(0.05, 10) == 0.0  # chance or below
    assert channel_information(1.0, 2) == pytest.approx(1.0)
    p = 0.75  # binary symmetric channel: 1 - H(p)
    assert channel_information(p, 2) == pytest.approx(1 + p * math.log2(p) + (1 - p) * math.log2(1 - p))


def test_bits_per_param_counts_partly_fitted_attempts_and_takes_the_best():
    k, params = 10, 1000
    # a full fit at 500 stores 500 log2(10) bits; a 99% fit at 700 stores more, and is the one counted
    atts = [(500, 1.0), (700, 0.99), (900, None)]
    want = 700 * channel_information(0.99, k) / params
    assert bits_per_param(atts, k, params) == pytest.approx(want)
    assert want > 500 * math.log2(10) / params
    assert bits_per_param([(10, None)], k, params) is None


def test_n50_recovers_the_midpoint_of_a_logistic_curve():
    rng = np.random.default_rng(0)
    true, slope = 800.0, -12.0
    ns = rng.integers(500, 1200, size=600)
    p = 1 / (1 + np.exp(-slope * (np.log(ns) - math.log(true))))
    out = n50([(int(n), bool(f)) for n, f in zip(ns, rng.random(600) < p)])
    lo, hi = out["ci95"]
    assert lo < true < hi and lo < out["n50"] < hi
    assert abs(out["n50"] / true - 1) < 0.05


def test_n50_is_null_when_fits_and_failures_do_not_overlap():
    assert n50([(100, True), (200, True), (300, False), (300, False)]) is None  # every fit below every failure
    assert n50([(100, True), (200, True), (200, False), (300, False)]) is None  # quasi-separated at one size
    assert n50([(100, True)]) is None
