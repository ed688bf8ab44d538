"""What a fit attempt is given and returns: `Budget` (train.*), `Checks` (convergence.*), `Recipe`,
`FitResult`, and the builders of the first two from a config section (`budget_from_config`,
`checks_from_config`). The lowest layer of the fit package: it imports nothing from it, so loop.py,
policies.py and checks.py (and schema/) all build on it without import cycles.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Any, List, Optional

from ..errors import reject_unknown, require
from ..optim import Procedure


POLICIES = ("converge", "fixed")
GRAD_RULES = ("absolute", "descent", "init")


@dataclass
class Budget:
    policy: str = "converge"   # converge: constant lr, decay on plateau, until a verdict | fixed: schedule
    caps: Optional[List[int]] = None  # the ladder of safety caps in optimizer steps, ascending (EMC(C) at
    #                              each; docs/convergence.md). null: one cap, epochs / min_steps below
    epochs: int = 2000         # converge: the safety cap in epochs | fixed: the schedule's length ...
    min_steps: int = 20000     # ... never fewer optimizer steps than this
    lr_decay: float = 0.5      # converge: lr multiplier at a plateau that is not a verified minimum
    min_lr_factor: float = 1e-2  # converge: below this fraction of the lr, an unverified plateau ends it
    max_extensions: int = 2    # fixed: extra training rounds for a failure not at a verified minimum
    extension_fraction: float = 0.5  # fixed: length of one extension, as a fraction of the budget
    extension_lr_factor: float = 0.1  # fixed: its peak lr, as a fraction of the procedure's lr
    eval_every: int = 50       # full-subset evaluation at least every k epochs ...
    eval_margin: float = 0.01  # ... and whenever the running accuracy is within this of the threshold

    def top_cap(self) -> Optional[int]:
        """The largest rung of train.caps (None: the cap comes from epochs / min_steps)."""
        return int(self.caps[-1]) if self.caps else None

    def validate(self) -> None:
        require(self.policy in POLICIES, "train.policy", self.policy, f"allowed: {', '.join(POLICIES)}")
        require(int(self.epochs) >= 1, "train.epochs", self.epochs, "must be a positive integer")
        if self.caps is not None:
            caps = list(self.caps)
            require(len(caps) >= 1 and all(isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in caps),
                    "train.caps", self.caps, "must be a list of positive step counts, e.g. [5000, 10000, 20000], or null")
            require(all(a < b for a, b in zip(caps, caps[1:])), "train.caps", self.caps,
                    "must be strictly ascending (each rung a larger cap; doublings: [5000, 10000, 20000])")
            require(self.policy == "converge" or len(caps) == 1, "train.caps", self.caps,
                    f"train.policy={self.policy} trains on a schedule whose length is the cap, so EMC at a smaller cap "
                    "cannot be read off its attempts; give one cap (e.g. [20000]) or use train.policy=converge")
        require(int(self.min_steps) >= 0, "train.min_steps", self.min_steps, "must be an integer >= 0")
        require(0 < float(self.lr_decay) < 1, "train.lr_decay", self.lr_decay, "must lie in (0, 1)")
        require(0 < float(self.min_lr_factor) <= 1, "train.min_lr_factor", self.min_lr_factor,
                "must lie in (0, 1]")
        require(int(self.max_extensions) >= 0, "train.max_extensions", self.max_extensions, "must be >= 0")
        require(0 < float(self.extension_fraction), "train.extension_fraction", self.extension_fraction,
                "must be > 0")
        require(int(self.eval_every) >= 1, "train.eval_every", self.eval_every, "must be a positive integer")


@dataclass
class Checks:
    grad_rule: str = "absolute"  # full-batch gradient norm below: absolute: grad_tol | init: grad_rel x
    #                              the norm at initialisation | descent: sqrt(rel_tol x loss / (lr x
    #                              patience_steps)), the norm at which gradient descent at the procedure's
    #                              lr would lower the loss by rel_tol over a plateau window (first order)
    grad_tol: float = 5e-2
    grad_rel: float = 1e-2
    blowup: float = 100.0        # a plateau with weights this many times their initial norm is degenerate
    polish_steps: int = 50       # full-batch GD steps (on a copy) before the gradient and Hessian checks:
    #                              they remove SGD's oscillation across stiff directions (0: off)
    min_eig: float = -1e-2       # ... no Hessian eigenvalue below this ...
    patience: int = 10           # ... and the smoothed loss flat for this many epochs
    patience_steps: int = 200    # ... and this many optimizer steps
    rel_tol: float = 1e-3        # improvement smaller than this (relative) counts as flat
    smoothing: float = 0.5       # EMA factor of the epoch loss
    hessian: bool = True         # run the Hessian check (off: the verdict rests on grad + plateau)
    check_fitted: bool = False   # also measure grad norm / Hessian on fitted attempts (recorded, never decides)
    early_verdict: bool = True   # stop a failing attempt once it is at a verified minimum
    check_every: int = 5         # epochs between early-verdict checks once plateaued
    lanczos_tol: float = 1e-3     # relative accuracy of the extreme eigenvalues
    lanczos_iters: int = 300      # cap on Hessian-vector products per check
    trace: bool = False          # Hutchinson trace by PyHessian
    trace_iters: int = 20
    chunk: int = 8192            # samples per chunk in full-batch passes

    def validate(self) -> None:
        require(int(self.patience) >= 1, "convergence.patience", self.patience, "must be an integer >= 1")
        require(isinstance(self.rel_tol, (int, float)) and 0 < self.rel_tol < 1, "convergence.rel_tol",
                self.rel_tol, "must lie in (0, 1) (relative improvement that still counts; 1e-3 by default)")
        require(isinstance(self.smoothing, (int, float)) and 0 <= self.smoothing < 1, "convergence.smoothing",
                self.smoothing, "must lie in [0, 1) (EMA factor of the epoch loss; 1 would freeze it)")
        require(self.min_eig <= 0, "convergence.min_eig", self.min_eig,
                "must be <= 0 (the most negative Hessian eigenvalue tolerated, e.g. -1e-2)")
        require(isinstance(self.grad_tol, (int, float)) and self.grad_tol > 0, "convergence.grad_tol",
                self.grad_tol, "must be a positive number, 'init' or 'auto'")
        require(self.grad_rule in GRAD_RULES, "convergence.grad_tol", self.grad_rule,
                "must be a positive number, " + ", ".join(repr(r) for r in GRAD_RULES[1:]) + " or 'auto'")
        require(isinstance(self.grad_rel, (int, float)) and self.grad_rel > 0,
                "convergence.grad_rel", self.grad_rel, "must be a positive number")
        require(isinstance(self.blowup, (int, float)) and self.blowup > 1, "convergence.blowup", self.blowup,
                "must be a number > 1")
        require(isinstance(self.polish_steps, int) and self.polish_steps >= 0, "convergence.polish_steps",
                self.polish_steps, "must be an integer >= 0 (0: check the iterate itself)")
        require(int(self.check_every) >= 1, "convergence.check_every", self.check_every, "must be >= 1")


@dataclass
class Recipe:
    procedure: Procedure
    budget: Budget = field(default_factory=Budget)
    checks: Checks = field(default_factory=Checks)
    fit_threshold: float = 1.0


@dataclass
class FitResult:
    status: str                  # fitted | failed | diverged | degenerate | unverified
    stop_reason: str             # fitted | verified_minimum | diverged | degenerate | cap | lr_floor | budget (fixed)
    train_acc: float
    train_loss: float
    epochs: int
    steps: int
    seconds: float
    grad_norm: Optional[float] = None
    plateaued: Optional[bool] = None
    min_eig: Optional[float] = None
    max_eig: Optional[float] = None
    trace: Optional[float] = None
    lanczos_iters: Optional[int] = None
    check_seconds: float = 0.0
    extensions: int = 0
    verified: Optional[bool] = None   # at a verified minimum (for non-fitted attempts)
    grad_evals: int = 0
    policy: str = "converge"
    grad_tol: Optional[float] = None  # the tolerance applied (grad_rel x init_grad_norm, or absolute)
    init_loss: Optional[float] = None  # full-subset loss and gradient norm at initialisation
    init_grad_norm: Optional[float] = None
    lr_final: Optional[float] = None  # the lr when the attempt stopped, as a fraction of the procedure's lr
    lr_decays: int = 0
    checks_run: int = 0               # plateaus at which the minimum checks ran
    grad_norm_polished: Optional[float] = None  # the gradient after convergence.polish_steps GD steps
    polish_lambda: Optional[float] = None       # the top Hessian eigenvalue that set the polish lr
    cap_steps: Optional[int] = None   # the attempt's safety cap (converge) or schedule length (fixed), in steps
    rungs: Optional[list] = None      # the full-subset evaluation at each train.caps rung the attempt passed:
    #                                   [{"cap", "step", "train_acc", "train_loss"}] (read-off of lower caps)
    resumed_from_step: Optional[int] = None  # trained on from a checkpoint saved at this step (a larger cap)

    @property
    def fitted(self) -> bool:
        return self.status == "fitted"

    def to_dict(self) -> dict:
        return asdict(self)


def checks_from_config(cfg: dict) -> tuple[Checks, Any]:
    """convergence.* -> Checks. grad_tol: a number (absolute), 'descent' (the default), 'init', or
    'auto' (an absolute tolerance calibrated once per job, see calibrate_grad_tol)."""
    c = dict(cfg)
    grad_tol = c.pop("grad_tol", "descent")
    calib = {k: c.pop(k) for k in ("calibration_n", "calibration_factor") if k in c}
    fields = {f.name for f in dataclasses.fields(Checks)} - {"grad_rule"}
    reject_unknown(sorted(c), fields, "convergence.",
                   allowed=sorted(fields | {"grad_tol", "calibration_n", "calibration_factor"}))
    if isinstance(grad_tol, str) and grad_tol != "auto":
        checks = Checks(**c, grad_rule=grad_tol)
    else:
        require(grad_tol == "auto" or (isinstance(grad_tol, (int, float)) and not isinstance(grad_tol, bool)),
                "convergence.grad_tol", grad_tol, "must be a positive number, 'descent', 'init' or 'auto'")
        checks = Checks(**c, grad_rule="absolute", grad_tol=1.0 if grad_tol == "auto" else grad_tol)
    checks.validate()
    return checks, (grad_tol, calib)


def budget_from_config(cfg: dict) -> Budget:
    fields = {f.name for f in dataclasses.fields(Budget)}
    reject_unknown(sorted(cfg), fields, "train.", allowed=sorted(fields))
    b = Budget(**cfg)
    b.validate()
    return b
