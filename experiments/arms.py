"""What the study trains, decodes and compares: four tables of frozen rows, read by the drivers.

`ARM_TABLE`: the trained models; `METHOD_TABLE`: the decodings of a trained model (with the
report's roles of each: reliability table, the issue's bars, equal-pass rows, the plot);
`COMPARISONS`: the report's paired differences; `GROUPS`: the order `experiments.scale`
runs them in. A new arm, decoding or comparison is a row here; the tables are checked
against each other when this module loads.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from types import MappingProxyType
from typing import NamedTuple

from rcd.decode import DecodeConfig
from rcd.residual import ResidualConfig
from rcd.train import ResidualTrainingConfig

REFERENCE = "ref"  # the seed's stage-1 model: trained before every arm, decoded like one
STAGES = ("seqd", "rcd")
SWEEPS = ("full", "core", "fixed", "orders", "thresholds")
# the commit rule and lengths are the sweep's; a method may set the rest of DecodeConfig (`MethodSpec.decode`)
SWEPT = ("gen_length", "block_length", "steps", "threshold", "order")


@dataclass(frozen=True)
class Arm:
    """A trained model: stage `seqd` or `rcd`, fine-tuned from the seed's reference for `steps`
    x stage_steps; or, `fresh`, a new `--target-model` that never saw the task, trained for
    `steps` x ref_steps (the paper's small-to-large: a smaller reference feeds a larger target)."""

    name: str
    stage: str
    steps: float = 1.0
    residual: ResidualTrainingConfig | None = None
    fresh: bool = False

    def __post_init__(self) -> None:
        if (
            self.stage not in STAGES
            or self.steps <= 0
            or (self.residual is not None) != (self.stage == "rcd")
        ):
            raise ValueError(f"arm {self.name}: stage in {STAGES}, steps > 0, a residual iff stage rcd")


@dataclass(frozen=True)
class MethodSpec:
    """A decoding of one arm (or of the reference): residual None = plain decoding. Sweeps
    (CPU-sized): 'full' = fixed schedules of 1/2/4/8 tokens per step and the threshold grid on
    validation and test; 'core' = the fixed schedules and tau 0.9; 'fixed' = 2/4/8 tokens per
    step; 'orders' = random and left-to-right commit orders at 4 tokens per step; 'thresholds' =
    the threshold grid alone, on validation and test. `decode`: (field, value) pairs of
    `DecodeConfig` applied to every setting (the confidence kind or its pass); its reports pair it
    with other methods by the commit rule alone.

    Its roles in the report: `reliability` (the table of commits by confidence), `barred` (an
    RCD recipe the issue's bars are checked for), `equal_passes` (a baseline that also gets a
    row at equal forward passes: interpolated on its fixed schedules to the challenger's
    measured tokens per pass, since RCD's warm start adds a pass), `plot` (its place among
    the plot's curves; None: in the tables only)."""

    name: str
    arm: str
    residual: ResidualConfig | None = None
    sweep: str = "full"
    reliability: bool = False
    barred: bool = False
    equal_passes: bool = False
    plot: int | None = None
    decode: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.sweep not in SWEEPS:
            raise ValueError(f"method {self.name}: sweep {self.sweep!r} is not one of {SWEEPS}")
        names = [name for name, _ in self.decode]
        allowed = {f.name for f in fields(DecodeConfig)} - set(SWEPT)
        if not set(names) <= allowed:
            raise ValueError(f"method {self.name}: decode sets {names}; choose among {sorted(allowed)}")
        DecodeConfig(threshold=0.9, **dict(self.decode))  # the values are DecodeConfig's to check


class Comparison(NamedTuple):
    """A paired difference of the report: challenger `new` - `base`, and the question it answers."""

    base: str
    new: str
    why: str


class Group(NamedTuple):
    """Arms trained and methods decoded together by one `experiments.scale` study call."""

    name: str
    arms: tuple[str, ...]
    methods: tuple[str, ...]


WARM = ResidualConfig(init="reference")
COLD = ResidualConfig(init="zero")
# the study's RCD recipe: entropy alpha (the paper's), the residual from the target's own pass
SELF = ResidualTrainingConfig(source="self", dropout=0.3)
HALF = dict(alpha="fixed", fixed_alpha=0.5)  # alpha fixed at 0.5 (the demo's recipe)
MARGIN = (("confidence", "margin"),)  # top-1 minus top-2 probability meets the threshold
PLAIN_PASS = (("confidence_pass", "plain"),)  # the residual-free pass's confidence, one more pass a step


def two_pass_training(**residual: object) -> ResidualTrainingConfig:
    """The two-pass rules' training (soft-masking, self-conditioning): the first pass, without
    gradient and with plain masks, feeds the second; half the samples (dropout 0.5) get plain masks."""
    return ResidualTrainingConfig(source="selfcond", dropout=0.5, residual=ResidualConfig(**residual))


ARM_TABLE: tuple[Arm, ...] = (
    Arm("seqd", "seqd"),
    Arm("rcd", "rcd", residual=SELF),
    Arm("seqd-long", "seqd", steps=1.6),  # the paper's "SeqD trained 60% longer"
    Arm("rcd-paper", "rcd", residual=ResidualTrainingConfig(source="noisy")),
    Arm("rcd-selfcond", "rcd", residual=ResidualTrainingConfig(source="selfcond", dropout=0.5)),
    Arm("rcd-long", "rcd", steps=1.6, residual=SELF),
    Arm("rcd-unroll2", "rcd", residual=replace(SELF, unroll=2)),
    Arm("rcd-unroll3", "rcd", residual=replace(SELF, unroll=3)),
    Arm("rcd-fixedalpha", "rcd", residual=replace(SELF, residual=ResidualConfig(**HALF))),
    # issue 30: RCD's relatives (docs/method.md, section 2.5), each trained the way its paper does
    Arm("rcd-softmask", "rcd", residual=two_pass_training(rule="soft-mask", top_k=3)),
    Arm("rcd-softmask-slerp", "rcd", residual=two_pass_training(rule="soft-mask-slerp", top_k=3)),
    Arm("rcd-selfcond-proj", "rcd", residual=two_pass_training(rule="selfcond-proj")),
    # the weighting alone changes: the fixed-alpha recipe's source and dropout, alpha from an MLP
    Arm("rcd-learned-alpha", "rcd", residual=replace(SELF, residual=ResidualConfig(rule="learned-alpha"))),
    Arm("seqd-fresh", "seqd", fresh=True),  # the small-to-large baseline: the same new model, plain objective
    # ... and the same new model trained with the paper's recipe
    Arm("rcd-fresh", "rcd", fresh=True, residual=ResidualTrainingConfig(source="noisy")),
)

METHOD_TABLE: tuple[MethodSpec, ...] = (
    MethodSpec("ref", REFERENCE, None, "fixed", plot=6),  # the seed's reference (stage 1 only)
    MethodSpec("ref+res", REFERENCE, COLD, "fixed"),  # ... decoded with residuals, training-free
    MethodSpec("ref order", REFERENCE, None, "orders"),
    MethodSpec("ref+res order", REFERENCE, COLD, "orders"),
    MethodSpec("seqd", "seqd", reliability=True, equal_passes=True, plot=0),
    MethodSpec("rcd", "rcd", WARM, reliability=True, barred=True, plot=1),
    # the RCD model without its residual
    MethodSpec("rcd-off", "rcd", None, "core", reliability=True, plot=3),
    MethodSpec("seqd-long", "seqd-long", None, "core", equal_passes=True, plot=2),
    MethodSpec("seqd+res", "seqd", COLD, "fixed", plot=4),  # training-free soft tokens
    MethodSpec("seqd order", "seqd", None, "orders"),
    MethodSpec("rcd order", "rcd", WARM, "orders"),
    MethodSpec("rcd-off order", "rcd", None, "orders"),
    MethodSpec("rcd-paper", "rcd-paper", WARM, "fixed", reliability=True),
    MethodSpec("rcd-paper aligned", "rcd-paper", replace(WARM, feedback="reference"), "fixed"),
    MethodSpec("rcd-paper-off", "rcd-paper", None, "fixed"),
    MethodSpec("rcd-selfcond", "rcd-selfcond", COLD, "fixed"),
    MethodSpec("rcd-selfcond-off", "rcd-selfcond", None, "fixed"),
    MethodSpec("rcd-cold", "rcd", COLD, "fixed"),
    MethodSpec("rcd-long", "rcd-long", WARM, "core"),
    MethodSpec("rcd-long-off", "rcd-long", None, "fixed"),
    MethodSpec("rcd-unroll2", "rcd-unroll2", WARM, "core"),
    MethodSpec("rcd-unroll3", "rcd-unroll3", WARM, "core"),
    MethodSpec("rcd T1.5", "rcd", replace(WARM, temperature=1.5), "fixed"),
    MethodSpec("rcd alpha0.5", "rcd", replace(WARM, **HALF), "fixed"),
    MethodSpec(
        "rcd-fixedalpha", "rcd-fixedalpha", replace(WARM, **HALF), reliability=True, barred=True, plot=5
    ),
    # issue 30 item 4: fixes a practitioner would try for the over-confident commits under thresholds
    MethodSpec(
        "rcd-fixedalpha margin", "rcd-fixedalpha", replace(WARM, **HALF), "thresholds", decode=MARGIN, plot=10
    ),
    MethodSpec(
        "rcd-fixedalpha plain-pass",
        "rcd-fixedalpha",
        replace(WARM, **HALF),
        "thresholds",
        decode=PLAIN_PASS,
        plot=11,
    ),
    MethodSpec(
        "rcd-fixedalpha T1.5", "rcd-fixedalpha", replace(WARM, **HALF, temperature=1.5), "thresholds", plot=12
    ),
    MethodSpec(
        "rcd-fixedalpha T1.5 plain-pass",
        "rcd-fixedalpha",
        replace(WARM, **HALF, temperature=1.5),
        "thresholds",
        decode=PLAIN_PASS,
        plot=13,
    ),
    MethodSpec(
        "seqd margin", "seqd", None, "thresholds", decode=MARGIN, plot=14
    ),  # the margin on SeqD itself
    # issue 30 item 2: the relatives. Two-pass rules start cold (their first pass is plain),
    # learned alpha warm like the fixed-alpha recipe; IterSmooth is training-free: on SeqD
    MethodSpec("rcd-softmask", "rcd-softmask", replace(COLD, rule="soft-mask", top_k=3), plot=15),
    MethodSpec(
        "rcd-softmask-slerp", "rcd-softmask-slerp", replace(COLD, rule="soft-mask-slerp", top_k=3), plot=16
    ),
    MethodSpec("rcd-selfcond-proj", "rcd-selfcond-proj", replace(COLD, rule="selfcond-proj"), plot=17),
    MethodSpec("rcd-learned-alpha", "rcd-learned-alpha", replace(WARM, rule="learned-alpha"), plot=18),
    MethodSpec("seqd itersmooth", "seqd", replace(COLD, rule="itersmooth"), plot=19),
    MethodSpec("seqd-fresh", "seqd-fresh", None, "core", equal_passes=True, plot=7),
    # warm start: the smaller reference's pass, counted
    MethodSpec("rcd-fresh", "rcd-fresh", WARM, "core", plot=8),
    # the residual of the reference each step, as in training
    MethodSpec("rcd-fresh aligned", "rcd-fresh", replace(WARM, feedback="reference"), "core", plot=9),
    MethodSpec("rcd-fresh-off", "rcd-fresh", None, "core"),
)

COMPARISONS: tuple[Comparison, ...] = (
    Comparison("ref", "ref+res", "training-free soft tokens on the stage-1 model"),
    Comparison(
        "ref order", "ref+res order", "training-free soft tokens, orders that do not pick easy cells first"
    ),
    Comparison("seqd", "rcd", "the core comparison (source self, entropy alpha)"),
    Comparison("seqd-long", "rcd", "RCD vs SeqD trained 60% longer"),
    Comparison("seqd", "seqd-long", "more training alone"),
    Comparison("seqd", "seqd+res", "training-free soft tokens on SeqD"),
    Comparison("rcd-off", "rcd", "the residual's worth to the RCD model"),
    Comparison("seqd", "rcd-off", "base skill lost by stage 2"),
    Comparison("seqd", "rcd-cold", "cold start"),
    Comparison("seqd order", "rcd order", "commit orders that do not pick easy cells first"),
    Comparison("rcd-off order", "rcd order", "the residual under those orders"),
    Comparison("seqd", "rcd-paper", "the paper's residual source, self-loop"),
    Comparison("seqd", "rcd-paper aligned", "the paper's source with the train-aligned residual"),
    Comparison("rcd-paper", "rcd-paper aligned", "aligned vs self-loop residual"),
    Comparison("rcd-paper-off", "rcd-paper", "the residual's worth to the paper-source model"),
    Comparison("seqd", "rcd-selfcond", "self-conditioning training (cold start)"),
    Comparison("rcd-selfcond-off", "rcd-selfcond", "the residual's worth to the self-conditioned model"),
    Comparison("seqd-long", "rcd-long", "stage 2 60% longer, both arms"),
    Comparison("rcd-long-off", "rcd-long", "the residual's worth after a longer stage 2"),
    Comparison("rcd", "rcd-unroll2", "the self-loop unrolled 2 steps in training instead of 1"),
    Comparison("rcd", "rcd-unroll3", "the self-loop unrolled 3 steps in training instead of 1"),
    Comparison("seqd", "rcd-unroll2", "RCD, self-loop unrolled 2 steps"),
    Comparison("seqd", "rcd-unroll3", "RCD, self-loop unrolled 3 steps"),
    Comparison("rcd", "rcd T1.5", "residual temperature 1.5 (more residual)"),
    Comparison("rcd", "rcd alpha0.5", "fixed alpha 0.5 at decoding"),
    Comparison("rcd", "rcd-fixedalpha", "fixed alpha 0.5 in training and decoding, vs entropy alpha"),
    Comparison("seqd", "rcd-fixedalpha", "RCD trained and decoded with fixed alpha 0.5"),
    Comparison(
        "seqd-long", "rcd-fixedalpha", "RCD with fixed alpha 0.5 vs SeqD trained 60% longer (equal compute)"
    ),
    Comparison(
        "seqd", "rcd-fixedalpha margin", "fixed alpha 0.5, margin confidence, vs SeqD's threshold curve"
    ),
    Comparison(
        "seqd", "rcd-fixedalpha plain-pass", "fixed alpha 0.5, residual-free confidence (+1 pass a step)"
    ),
    Comparison("seqd", "rcd-fixedalpha T1.5", "fixed alpha 0.5, residual temperature 1.5 at decoding"),
    Comparison(
        "seqd", "rcd-fixedalpha T1.5 plain-pass", "fixed alpha 0.5, T_res 1.5 and residual-free confidence"
    ),
    Comparison("rcd-fixedalpha", "rcd-fixedalpha T1.5", "residual temperature 1.5 at decoding, same model"),
    Comparison("seqd", "seqd margin", "the margin rule on SeqD itself"),
    Comparison("seqd", "rcd-softmask", "soft-masking (learned confidence weight, top-3), two-pass training"),
    Comparison("seqd", "rcd-softmask-slerp", "soft-masking, spherical mix"),
    Comparison("seqd", "rcd-selfcond-proj", "self-conditioning through a learned projection"),
    Comparison("seqd", "rcd-learned-alpha", "alpha from a small MLP, the fixed-alpha recipe's training"),
    Comparison("rcd-fixedalpha", "rcd-learned-alpha", "learned vs fixed alpha, same source and dropout"),
    Comparison("seqd", "seqd itersmooth", "IterSmooth (dInfer): training-free soft tokens on SeqD"),
    Comparison("seqd-long", "rcd-softmask", "soft-masking vs SeqD trained 60% longer"),
    Comparison("seqd-long", "rcd-selfcond-proj", "self-conditioning vs SeqD trained 60% longer"),
    Comparison("seqd-long", "rcd-learned-alpha", "learned alpha vs SeqD trained 60% longer"),
    Comparison(
        "seqd-fresh",
        "rcd-fresh",
        "small-to-large: a new target fed the reference's residual vs plain, same steps",
    ),
    Comparison("rcd-fresh-off", "rcd-fresh", "the residual's worth to the new target"),
    Comparison(
        "rcd-fresh", "rcd-fresh aligned", "small-to-large: the train-aligned residual vs the self-loop"
    ),
    Comparison(
        "seqd-fresh",
        "rcd-fresh aligned",
        "small-to-large, the train-aligned residual (reference pass each step)",
    ),
)

# in priority order: the core comparison, then the controls that separate "more training" from
# "using the residual", then the paper's recipe; last the paper's small-to-large (a new
# --target-model fed the reference's residual), run on request
GROUPS: tuple[Group, ...] = (
    Group("core", ("seqd", "rcd"), ("seqd", "rcd", "rcd-off")),
    Group("controls", ("seqd-long",), ("seqd-long", "seqd+res", "seqd order", "rcd order", "rcd-off order")),
    Group("paper", ("rcd-paper",), ("rcd-paper", "rcd-paper-off", "rcd-paper aligned")),
    Group(
        "small-to-large",
        ("seqd-fresh", "rcd-fresh"),
        ("ref", "seqd-fresh", "rcd-fresh", "rcd-fresh aligned", "rcd-fresh-off"),
    ),
)


def index(rows: tuple, what: str) -> MappingProxyType:
    """The rows by name, in table order (a read-only view); a name given twice is refused."""
    names = [row.name for row in rows]
    if twice := sorted({n for n in names if names.count(n) > 1}):
        raise ValueError(f"{what} named twice: {twice}")
    return MappingProxyType({row.name: row for row in rows})


def check(
    arms: MappingProxyType,
    methods: MappingProxyType,
    comparisons: tuple[Comparison, ...],
    groups: tuple[Group, ...],
) -> None:
    """Every name a row gives is a row of its table (the reference is an arm of every seed)."""
    unknown = {m.arm for m in methods.values()} - {*arms, REFERENCE}
    unknown |= {name for c in comparisons for name in (c.base, c.new)} - set(methods)
    unknown |= {a for g in groups for a in g.arms} - set(arms)
    unknown |= {m for g in groups for m in g.methods} - set(methods)
    places = sorted(m.plot for m in methods.values() if m.plot is not None)
    if unknown or places != list(range(len(places))):
        raise ValueError(f"unknown arms or methods {sorted(unknown)}, or plot places not 0..n-1: {places}")


ARMS = index(ARM_TABLE, "arms")
METHODS = index(METHOD_TABLE, "methods")
check(ARMS, METHODS, COMPARISONS, GROUPS)
RELIABILITY = tuple(m.name for m in METHOD_TABLE if m.reliability)
BARRED = tuple(m.name for m in METHOD_TABLE if m.barred)
EQUAL_PASS_BASELINES = tuple(m.name for m in METHOD_TABLE if m.equal_passes)
PLOTTED = tuple(m.name for m in sorted((m for m in METHOD_TABLE if m.plot is not None), key=lambda m: m.plot))
