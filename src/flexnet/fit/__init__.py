"""Fitting one attempt: a model trained on a subset until fitted or at a verified minimum.

loop.py: `train_to_minimum` and what it is given and returns (`Budget`, `Checks`, `Recipe`,
`FitResult`); policies.py: the two lr policies (converge, fixed); checks.py: the minimum checks of an
attempt (`Checker`); minimum.py: gradient norm, plateau, Hessian eigenvalues (Lanczos); stacked.py:
several attempts trained as one stacked model; pastfit.py: training a fixed length past the fit.
Pure: no files, no logging side effects.
"""
