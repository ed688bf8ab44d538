"""growth=fit_time_power's aim (search/bisect.py: aim_power) on fractions drawn from a known power law.

The searches' property tests (test_properties.py) check only the rule every growth keeps; where the
probes land is this aim's job: pure numbers, no training."""
from __future__ import annotations

import pytest

from flexnet.search.bisect import MIN_FRACTION, aim, aim_power

POLE, P = 1500.0, 1.7
A = 0.3 * (POLE - 1000) ** P  # f(1000) = 0.3 of the cap


def f(n: float) -> float:
    """The fraction of its cap a fit at n uses: a (N - n)^-p."""
    return A * (POLE - n) ** -P


TRUTH = POLE - A ** (1 / P)  # where f = 1: the whole cap (~1253.7)
FITS = {n: f(n) for n in (1000, 1050, 1100, 1150)}


def test_power_law_aim_finds_where_the_fit_would_use_the_whole_cap():
    assert aim_power(FITS) == pytest.approx(TRUTH, abs=1.0)
    assert abs(aim(FITS) - TRUTH) > 10  # the hyperbola (p = 1) misses it: the power law is what is fitted


def test_power_law_aim_ignores_early_fits_below_a_tenth_of_the_largest():
    top = max(FITS.values())
    assert aim_power({**FITS, 256: top / 20}) == aim_power(FITS)
    assert aim_power({**FITS, 256: top / 10.5}) == aim_power(FITS)
    assert aim_power({**FITS, 256: top / 10}) != aim_power(FITS)  # a tenth or more counts
    assert aim_power({**FITS, 256: 0.0}) == aim_power(FITS)  # a zero fraction says nothing ...
    three = {n: f(n) for n in (1000, 1050, 1100)}
    assert aim_power({**three, 1150: 0.0}) == aim_power(three)  # ... even as one of the two largest sizes
    # the two largest sizes always count; with only them above a tenth it is the hyperbola through them
    for tail in ({256: top / 20, 900: top / 30, 1100: f(1100), 1150: f(1150)},
                 {256: top / 20, 512: top / 25, 900: top / 30, 1100: f(1100), 1150: f(1150)}):
        assert aim_power(tail) == aim(tail)


def test_power_law_aim_from_three_fits_and_at_the_smallest_fraction():
    three = {n: f(n) for n in (1000, 1075, 1150)}
    assert aim_power(three) == pytest.approx(TRUTH, abs=1.0)  # three points: the power law already
    top = max(FITS.values())
    at_min = {n: v * MIN_FRACTION / top for n, v in FITS.items()}  # the largest fraction exactly MIN_FRACTION
    assert max(at_min.values()) == MIN_FRACTION and aim_power(at_min) != aim(at_min)


def test_power_law_aim_falls_back_to_the_hyperbola():
    two = {1000: f(1000), 1100: f(1100)}
    assert aim_power(two) == aim(two)  # fewer than three points
    assert aim_power({1000: 0.3, 1100: 0.2, 1200: 0.1}) is None  # fits that speed up: no aim at all
    small = {n: v * (MIN_FRACTION * 0.9) / max(FITS.values()) for n, v in FITS.items()}
    assert aim_power(small) is None  # too little of the cap used to extrapolate


def test_power_law_aim_with_an_exponent_below_one():
    """The fitted exponent may be any p > 0 (the hyperbola is p = 1): p = 0.7."""
    a = 0.3 * (POLE - 1000) ** 0.7
    fits = {n: a * (POLE - n) ** -0.7 for n in (1000, 1050, 1100, 1150)}
    assert aim_power(fits) == pytest.approx(POLE - a ** (1 / 0.7), abs=2.0)
