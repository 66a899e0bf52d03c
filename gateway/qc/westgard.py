"""Westgard multirule QC engine: pure, table-driven; evaluates the newest run against its history.

Definitions are from westgard.com ("Westgard Rules", "Multirule QC", "Westgard Sigma Rules") and
J.O. Westgard, *Basic QC Practices*; the facts carry over, no code is copied.

Conventions (documented because the pages leave them open):

- z = (value - mean) / SD per level, with the mean and SD of the level's current lot/target.
- Limits are INCLUSIVE: a value at exactly +2.0 SD "exceeds" the 2s limit (|z| >= 2), likewise
  for 1s, 3s and the 4s range. 1.99 SD does not.
- The "x" rules (mean rules) need values strictly on one side of the mean: a value exactly at
  the mean breaks the pattern.
- A pattern counts only when it ends at the newest value: every violation involves a point of
  the newest run (for windows: the window's last point is in the newest run).
- History restarts when a level's target (lot, mean or SD) changes: points measured under an
  earlier target are not part of any pattern for that level.
- Every selected rule is evaluated on every run (1-2s does not gate the others); the run's
  verdict is reject if any reject rule fired, warning if only warning rules fired, else accept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["warning", "reject"]
ErrorType = Literal["random", "systematic"]
Scope = Literal["point", "within_run", "across_runs", "across_levels"]
Verdict = Literal["accept", "warning", "reject"]

#: A check over z-scores in time order (oldest first); returns the indices of the points that make
#: the pattern (which must include the last one), or None.
Check = Callable[[Sequence[float]], "tuple[int, ...] | None"]


class RuleError(ValueError):
    """A rule name that is not in the table (the message names it)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown Westgard rule {name!r} (known: {', '.join(RULE_NAMES)})")
        self.name = name


@dataclass(frozen=True)
class Target:
    """A level's control target: mean and SD of the current lot (``lot`` names it)."""

    mean: float
    sd: float
    lot: str = ""

    def __post_init__(self) -> None:
        if not self.sd > 0:
            raise ValueError(f"SD must be > 0, got {self.sd}")


@dataclass(frozen=True)
class Control:
    """One control value of a run, with the target it is judged against."""

    value: float
    target: Target

    @property
    def z(self) -> float:
        return (self.value - self.target.mean) / self.target.sd


@dataclass(frozen=True)
class Run:
    """A QC run: an id and one control value per level."""

    run_id: str
    controls: Mapping[str, Control]


@dataclass(frozen=True)
class Violation:
    """A rule that fired: the levels and the run ids of the points involved (oldest first)."""

    rule: str
    kind: Kind
    error_type: ErrorType
    scope: Scope
    levels: tuple[str, ...]
    runs: tuple[str, ...]


@dataclass(frozen=True)
class RunResult:
    """The newest run's verdict and every violation found on it."""

    run_id: str
    verdict: Verdict
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class Rule:
    """One Westgard rule: what it is, where it is applied, and its pure check."""

    name: str
    kind: Kind
    error_type: ErrorType
    window: int
    scopes: tuple[Scope, ...]
    check: Check
    source: str = field(compare=False)


# --- the checks (pure functions over z-scores) ---------------------------------------------


def _last_beyond(limit: float) -> Check:
    """The newest value is at or beyond +-limit."""

    def check(z: Sequence[float]) -> tuple[int, ...] | None:
        return (len(z) - 1,) if abs(z[-1]) >= limit else None

    return check


def _all_beyond_same(limit: float) -> Check:
    """Every value of the window at or beyond the same limit (+limit, or -limit)."""

    def check(z: Sequence[float]) -> tuple[int, ...] | None:
        if all(v >= limit for v in z) or all(v <= -limit for v in z):
            return tuple(range(len(z)))
        return None

    return check


def _same_side(z: Sequence[float]) -> tuple[int, ...] | None:
    """Every value strictly on the same side of the mean (mean rules)."""
    if all(v > 0 for v in z) or all(v < 0 for v in z):
        return tuple(range(len(z)))
    return None


def _some_beyond_same(count: int, limit: float) -> Check:
    """At least ``count`` values beyond the same limit, the newest among them."""

    def check(z: Sequence[float]) -> tuple[int, ...] | None:
        last = z[-1]
        if abs(last) < limit:
            return None
        sign = 1.0 if last > 0 else -1.0
        hits = tuple(i for i, v in enumerate(z) if v * sign >= limit)
        return hits if len(hits) >= count else None

    return check


def _within_run_same(count: int, limit: float) -> Check:
    """Within one run: at least ``count`` levels beyond the same limit."""

    def check(z: Sequence[float]) -> tuple[int, ...] | None:
        high = tuple(i for i, v in enumerate(z) if v >= limit)
        if len(high) >= count:
            return high
        low = tuple(i for i, v in enumerate(z) if v <= -limit)
        return low if len(low) >= count else None

    return check


def _range_4s(z: Sequence[float]) -> tuple[int, ...] | None:
    """R-4s, range form: highest minus lowest z within the run is at least 4."""
    if len(z) < 2:
        return None
    hi = max(range(len(z)), key=lambda i: z[i])
    lo = min(range(len(z)), key=lambda i: z[i])
    return tuple(sorted((lo, hi))) if z[hi] - z[lo] >= 4.0 else None


def _strict_4s(z: Sequence[float]) -> tuple[int, ...] | None:
    """R-4s, strict form: one level at or above +2 SD and another at or below -2 SD."""
    hi = max(range(len(z)), key=lambda i: z[i])
    lo = min(range(len(z)), key=lambda i: z[i])
    return tuple(sorted((lo, hi))) if z[hi] >= 2.0 and z[lo] <= -2.0 else None


_WR = "westgard.com, 'Westgard Rules' (multirule QC), rule definitions"
_N3 = "westgard.com, 'Westgard Rules', rules for N=3 (three control materials)"

#: The rule table. Scopes: "point" = each value of the newest run; "within_run" = across the
#: levels of the newest run; "across_runs" = within one level, its last ``window`` values;
#: "across_levels" = the last ``window`` values of all levels in run-then-level order.
RULES: tuple[Rule, ...] = (
    # "1-2s ... one control measurement exceeds the mean +-2s": a warning in Westgard's scheme.
    Rule("1-2s", "warning", "random", 1, ("point",), _last_beyond(2.0), _WR + ", 1-2s"),
    # "1-3s ... one control measurement exceeds the mean +-3s": reject, random error.
    Rule("1-3s", "reject", "random", 1, ("point",), _last_beyond(3.0), _WR + ", 1-3s"),
    # "2-2s ... 2 consecutive control measurements exceed the same mean+2s or mean-2s limit";
    # applied across levels within a run and across runs within a level: systematic.
    Rule(
        "2-2s",
        "reject",
        "systematic",
        2,
        ("within_run", "across_runs"),
        _all_beyond_same(2.0),
        _WR + ", 2-2s",
    ),
    # "R-4s ... 1 control measurement in a group exceeds the mean+2s and another exceeds the
    # mean-2s" (within run only): random. Range form by default (see R4S_STRICT).
    Rule("R-4s", "reject", "random", 0, ("within_run",), _range_4s, _WR + ", R-4s"),
    # "4-1s ... 4 consecutive control measurements exceed the same mean+1s or mean-1s": across
    # runs in one material, or across materials: systematic.
    Rule(
        "4-1s",
        "reject",
        "systematic",
        4,
        ("across_runs", "across_levels"),
        _all_beyond_same(1.0),
        _WR + ", 4-1s",
    ),
    # "10x ... 10 consecutive control measurements fall on one side of the mean"; 8x and 12x
    # are the variants that fit N=2/4 (8x) and N=3/4/6 (12x) cycles: systematic.
    Rule("8x", "reject", "systematic", 8, ("across_runs", "across_levels"), _same_side, _WR),
    Rule("10x", "reject", "systematic", 10, ("across_runs", "across_levels"), _same_side, _WR),
    Rule("12x", "reject", "systematic", 12, ("across_runs", "across_levels"), _same_side, _WR),
    # N=3 family: "2of3-2s ... 2 out of 3 control measurements exceed the same mean+2s or
    # mean-2s limit" (within the run of three levels, or the last 3 of one level).
    Rule(
        "2of3-2s",
        "reject",
        "systematic",
        3,
        ("within_run", "across_runs"),
        _some_beyond_same(2, 2.0),
        _N3 + ", 2of3-2s",
    ),
    # "3-1s ... 3 consecutive control measurements exceed the same mean+1s or mean-1s"
    # (also the three materials of one run).
    Rule(
        "3-1s",
        "reject",
        "systematic",
        3,
        ("within_run", "across_runs", "across_levels"),
        _all_beyond_same(1.0),
        _N3 + ", 3-1s",
    ),
    # "6x / 9x ... 6 (9) consecutive control measurements fall on one side of the mean".
    Rule("6x", "reject", "systematic", 6, ("across_runs", "across_levels"), _same_side, _N3),
    Rule("9x", "reject", "systematic", 9, ("across_runs", "across_levels"), _same_side, _N3),
)

RULE_NAMES: tuple[str, ...] = tuple(r.name for r in RULES)
_BY_NAME: dict[str, Rule] = {r.name.lower(): r for r in RULES}
#: The strict form of R-4s, chosen with ``parse_rules(..., strict_r4s=True)``.
R4S_STRICT = Rule("R-4s", "reject", "random", 0, ("within_run",), _strict_4s, _WR + ", R-4s")
#: The classic Westgard multirule for two levels.
DEFAULT_RULES = "1-2s,1-3s,2-2s,R-4s,4-1s,10x"
#: Within-run forms with their own check: any 2 (2-2s, 2of3-2s) or 3 (3-1s) levels beyond
#: the same limit in the run.
_WITHIN_RUN_CHECKS: dict[str, Check] = {
    "2-2s": _within_run_same(2, 2.0),
    "2of3-2s": _within_run_same(2, 2.0),
    "3-1s": _within_run_same(3, 1.0),
}
MAX_WINDOW = max(r.window for r in RULES)


def parse_rules(spec: str, *, strict_r4s: bool = False) -> tuple[Rule, ...]:
    """Rules named as on Westgard's pages ("1-3s,2-2s,R-4s"); RuleError names a bad one."""
    chosen: list[Rule] = []
    for raw in spec.split(","):
        name = raw.strip()
        if not name:
            continue
        rule = _BY_NAME.get(name.lower().replace(":", "-").replace("_", "-"))
        if rule is None:
            raise RuleError(name)
        if rule.name == "R-4s" and strict_r4s:
            rule = R4S_STRICT
        if rule not in chosen:
            chosen.append(rule)
    if not chosen:
        raise RuleError(spec)
    return tuple(chosen)


# --- evaluation --------------------------------------------------------------------------------


def _level_history(history: Sequence[Run], newest: Run, level: str) -> list[tuple[str, float]]:
    """(run id, z) of ``level`` since its target last changed, oldest first, newest included."""
    target = newest.controls[level].target
    points: list[tuple[str, float]] = [(newest.run_id, newest.controls[level].z)]
    for run in reversed(history):
        control = run.controls.get(level)
        if control is None:
            continue
        if control.target != target:
            break  # a new lot or target: history restarts
        points.append((run.run_id, control.z))
    points.reverse()
    return points


def _combined(
    per_level: Mapping[str, list[tuple[str, float]]], levels: Sequence[str], run_ids: Sequence[str]
) -> list[tuple[str, str, float]]:
    """(run id, level, z) of all levels in run-then-level order (each level's valid history)."""
    valid = {level: dict(pts) for level, pts in per_level.items()}
    points: list[tuple[str, str, float]] = []
    for rid in dict.fromkeys(run_ids):
        for level in levels:
            z = valid[level].get(rid)
            if z is not None:
                points.append((rid, level, z))
    return points


def evaluate(history: Sequence[Run], newest: Run, rules: Iterable[Rule]) -> RunResult:
    """Every selected rule on the newest run (``history``: earlier runs, oldest first)."""
    levels = sorted(newest.controls)
    per_level = {level: _level_history(history, newest, level) for level in levels}
    combined: list[tuple[str, str, float]] | None = None
    found: list[Violation] = []
    for rule in rules:

        def hit(scope: Scope, lv: Iterable[str], runs: Iterable[str], rule: Rule = rule) -> None:
            found.append(
                Violation(
                    rule.name,
                    rule.kind,
                    rule.error_type,
                    scope,
                    tuple(dict.fromkeys(lv)),
                    tuple(dict.fromkeys(runs)),
                )
            )

        for scope in rule.scopes:
            if scope == "point":
                for level in levels:
                    if rule.check([per_level[level][-1][1]]) is not None:
                        hit(scope, [level], [newest.run_id])
            elif scope == "within_run":
                if len(levels) < 2:
                    continue
                check = _WITHIN_RUN_CHECKS.get(rule.name, rule.check)
                idx = check([newest.controls[level].z for level in levels])
                if idx is not None:
                    hit(scope, [levels[i] for i in idx], [newest.run_id])
            elif scope == "across_runs":
                for level in levels:
                    pts = per_level[level]
                    if len(pts) < rule.window:
                        continue
                    window = pts[-rule.window :]
                    idx = rule.check([z for _, z in window])
                    if idx is not None and rule.window - 1 in idx:
                        hit(scope, [level], [window[i][0] for i in idx])
            else:  # across_levels: only meaningful with two or more levels in the window
                if len(levels) < 2:
                    continue
                if combined is None:
                    combined = _combined(
                        per_level, levels, [*(r.run_id for r in history), newest.run_id]
                    )
                if len(combined) < rule.window:
                    continue
                window3 = combined[-rule.window :]
                # across levels AND runs: a window inside one run is the within-run form's
                if len({lv for _, lv, _ in window3}) < 2 or window3[0][0] == newest.run_id:
                    continue
                idx = rule.check([z for _, _, z in window3])
                if idx is not None and not _covered_within_level(found, rule.name):
                    hit(scope, [window3[i][1] for i in idx], [window3[i][0] for i in idx])
    return RunResult(newest.run_id, _verdict(found), tuple(found))


def _covered_within_level(found: Sequence[Violation], rule: str) -> bool:
    """The rule already fired within a level on this run (the across-levels form adds nothing)."""
    return any(v.rule == rule and v.scope == "across_runs" for v in found)


def _verdict(violations: Sequence[Violation]) -> Verdict:
    if any(v.kind == "reject" for v in violations):
        return "reject"
    return "warning" if violations else "accept"


class Engine:
    """The live engine: keeps the last runs (enough for the longest rule) and evaluates each."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._keep = max([r.window for r in self.rules] + [1])
        self._history: deque[Run] = deque(maxlen=self._keep * 4)

    def add(self, run: Run) -> RunResult:
        """Evaluate ``run`` against the history, then append it to the history."""
        result = evaluate(self._history, run, self.rules)
        self._history.append(run)
        return result


def evaluate_series(runs: Iterable[Run], rules: Iterable[Rule]) -> list[RunResult]:
    """Each run of a series in order, exactly as the live engine would have judged it."""
    engine = Engine(rules)
    return [engine.add(run) for run in runs]


# --- rule selection from the sigma metric -----------------------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """A rule set for a sigma metric: the rules, controls per run (N) and runs per cycle (R)."""

    sigma: float
    rules: str
    n: int
    r: int
    note: str


def sigma_metric(tea_percent: float, bias_percent: float, cv_percent: float) -> float:
    """Sigma = (TEa - |bias|) / CV, all in percent."""
    if not cv_percent > 0:
        raise ValueError(f"CV must be > 0, got {cv_percent}")
    return (tea_percent - abs(bias_percent)) / cv_percent


def suggest_rules(tea_percent: float, bias_percent: float, cv_percent: float) -> Suggestion:
    """The rule set Westgard Sigma Rules (westgard.com, 2014, two control levels) gives.

    Bands: sigma >= 6: 1-3s, N=2, R=1; >= 5: 1-3s/2-2s/R-4s, N=2, R=1; >= 4: add 4-1s, N=4, R=1
    (or N=2, R=2); below 4: 1-3s/2-2s/R-4s/4-1s/8x, N=4, R=2 (or N=2, R=4), and below 3 the
    method is not fit: the fullest multirule with the most controls, and improve the method.
    """
    sigma = sigma_metric(tea_percent, bias_percent, cv_percent)
    if sigma >= 6:
        return Suggestion(sigma, "1-3s", 2, 1, "world class")
    if sigma >= 5:
        return Suggestion(sigma, "1-3s,2-2s,R-4s", 2, 1, "excellent")
    if sigma >= 4:
        return Suggestion(sigma, "1-3s,2-2s,R-4s,4-1s", 4, 1, "good (or N=2 over R=2 runs)")
    if sigma >= 3:
        return Suggestion(sigma, "1-3s,2-2s,R-4s,4-1s,8x", 4, 2, "marginal (or N=2, R=4)")
    return Suggestion(sigma, "1-3s,2-2s,R-4s,4-1s,8x", 4, 2, "poor: improve the method")
