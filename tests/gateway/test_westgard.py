"""Westgard multirule engine: the rules' published definitions as worked examples, boundaries,
history restarts, "ends at the newest value", R-4s forms, sigma bands, and Hypothesis properties.

The worked examples are built from the definitions and examples on westgard.com, "Westgard Rules"
(the multirule page: rule definitions and the "how to apply" notes on within-run and across-run
use) and its N=3 section, and "Westgard Sigma Rules" for rule selection. Each test's docstring
names the definition it reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.qc.westgard import (
    RULE_NAMES,
    Control,
    Engine,
    Rule,
    RuleError,
    Run,
    RunResult,
    Target,
    evaluate_series,
    parse_rules,
    sigma_metric,
    suggest_rules,
)

LOW = Target(mean=100.0, sd=5.0, lot="L1")
HIGH = Target(mean=200.0, sd=10.0, lot="H1")
ALL = parse_rules(",".join(RULE_NAMES))


def series(
    *runs: Sequence[float | None], targets: Sequence[Target] = (LOW, HIGH), start: int = 1
) -> list[Run]:
    """Runs r1, r2, ... from z-scores per level ("1", "2", ...); None = level not measured."""
    out = []
    for n, zs in enumerate(runs, start=start):
        controls = {
            str(i + 1): Control(t.mean + z * t.sd, t)
            for i, (z, t) in enumerate(zip(zs, targets, strict=False))
            if z is not None
        }
        out.append(Run(f"r{n}", controls))
    return out


def last(runs: list[Run], rules: str | tuple[Rule, ...] = ALL) -> RunResult:
    chosen = parse_rules(rules) if isinstance(rules, str) else rules
    return evaluate_series(runs, chosen)[-1]


def fired(result: RunResult) -> set[tuple[str, str]]:
    return {(v.rule, v.scope) for v in result.violations}


def test_1_2s_is_a_warning_at_exactly_2_sd_and_not_at_1_99() -> None:
    """'1-2s: one control measurement exceeds the mean +-2s' is a warning rule (Westgard Rules).

    Limits are inclusive: 2.0 SD counts, 1.99 SD does not.
    """
    result = last(series((2.0, 0.0)), "1-2s,1-3s")
    assert result.verdict == "warning"
    assert [(v.rule, v.levels, v.runs, v.error_type) for v in result.violations] == [
        ("1-2s", ("1",), ("r1",), "random")
    ]
    assert last(series((1.99, -1.99)), "1-2s,1-3s").verdict == "accept"


def test_1_3s_rejects_at_exactly_3_sd_as_random_error() -> None:
    """'1-3s: reject when one control measurement exceeds the mean +-3s' (random error)."""
    result = last(series((0.0, -3.0)), "1-3s")
    assert result.verdict == "reject"
    assert result.violations[0].levels == ("2",) and result.violations[0].error_type == "random"
    assert last(series((0.0, -2.99)), "1-3s").verdict == "accept"


def test_2_2s_within_run_across_levels() -> None:
    """2-2s 'within run': both control materials exceed the same 2s limit (systematic)."""
    result = last(series((2.0, 2.5)), "2-2s")
    assert [(v.scope, v.levels, v.runs, v.error_type) for v in result.violations] == [
        ("within_run", ("1", "2"), ("r1",), "systematic")
    ]
    # Opposite limits are not 2-2s (that is R-4s's business).
    assert last(series((2.0, -2.5)), "2-2s").verdict == "accept"
    assert last(series((2.0, 1.99)), "2-2s").verdict == "accept"


def test_2_2s_across_runs_within_a_level() -> None:
    """2-2s 'across runs': the same material exceeds the same 2s limit in two consecutive runs."""
    result = last(series((2.1, 0.0), (2.0, 0.0)), "2-2s")
    assert [(v.scope, v.levels, v.runs) for v in result.violations] == [
        ("across_runs", ("1",), ("r1", "r2"))
    ]
    assert last(series((2.1, 0.0), (-2.0, 0.0)), "2-2s").verdict == "accept"


def test_r_4s_range_form_by_default_and_strict_form_as_option() -> None:
    """R-4s: 'one control exceeds +2s and another exceeds -2s' within a run (random error).

    The range form (default) rejects when the run's range is at least 4 SD (+1.5 and -2.5); the
    strict form needs one at or above +2 SD and one at or below -2 SD.
    """
    runs = series((1.5, -2.5))
    result = last(runs, "R-4s")
    assert [(v.rule, v.scope, v.levels, v.error_type) for v in result.violations] == [
        ("R-4s", "within_run", ("1", "2"), "random")
    ]
    assert last(runs, parse_rules("R-4s", strict_r4s=True)).verdict == "accept"
    assert last(series((2.0, -2.0)), parse_rules("R-4s", strict_r4s=True)).verdict == "reject"
    assert last(series((1.5, -2.49)), "R-4s").verdict == "accept"


def test_r_4s_is_not_applied_across_runs() -> None:
    """R-4s is a within-run rule: +2.5 in one run and -2.5 in the next is not R-4s.

    westgard.com, 'Westgard Rules', power function graphs: "rules for random error, such as
    R4s, [should] be used only within a run in order to distinguish random error from
    between-run systematic errors".
    """
    assert last(series((2.5, 0.0), (-2.5, 0.0)), "R-4s").verdict == "accept"


def test_4_1s_within_a_level_and_across_levels() -> None:
    """4-1s: 'four consecutive control measurements exceed the same mean+1s or mean-1s', within
    one material across runs, or across materials (two levels in two runs)."""
    within = last(series((1.0, 0.0), (1.2, 0.0), (1.5, 0.0), (1.0, 0.0)), "4-1s")
    assert [(v.scope, v.levels, v.runs) for v in within.violations] == [
        ("across_runs", ("1",), ("r1", "r2", "r3", "r4"))
    ]
    across = last(series((-1.1, -1.0), (-1.3, -1.2)), "4-1s")
    assert [(v.scope, v.levels, v.runs) for v in across.violations] == [
        ("across_levels", ("1", "2"), ("r1", "r2"))
    ]
    assert last(series((1.0, 0.0), (1.2, 0.0), (0.99, 0.0), (1.0, 0.0)), "4-1s").verdict == (
        "accept"
    )


@pytest.mark.parametrize("n", [8, 10, 12])
def test_mean_rules_nx(n: int) -> None:
    """10x: 'ten consecutive control measurements fall on one side of the mean'; 8x and 12x."""
    rule = f"{n}x"
    assert last(series(*[(0.3, None)] * n), rule).verdict == "reject"
    assert last(series(*[(0.3, None)] * (n - 1)), rule).verdict == "accept"
    # A value exactly at the mean is on neither side and breaks the pattern.
    assert last(series(*[(0.3, None)] * (n - 1), (0.0, None)), rule).verdict == "accept"
    # Across levels: n/2 runs of two levels.
    across = last(series(*[(-0.2, -0.4)] * (n // 2)), rule)
    assert fired(across) == {(rule, "across_levels")}


def test_n3_family() -> None:
    """N=3 rules: 2of3-2s within a run of three levels and across runs; 3-1s; 6x; 9x."""
    three = (LOW, HIGH, Target(50.0, 2.0, "M1"))
    within = last(series((2.0, 0.5, 2.2), targets=three), "2of3-2s")
    assert [(v.scope, v.levels) for v in within.violations] == [("within_run", ("1", "3"))]
    across = last(series((2.1, 0, 0), (0.5, 0, 0), (2.0, 0, 0), targets=three), "2of3-2s")
    assert [(v.scope, v.levels, v.runs) for v in across.violations] == [
        ("across_runs", ("1",), ("r1", "r3"))
    ]
    assert last(series(*[(1.0, 0, 0)] * 3, targets=three), "3-1s").verdict == "reject"
    run31 = last(series((1.0, -0.5, 1.1), (1.2, 1.0, 1.0), targets=three), "3-1s")
    assert [(v.scope, v.levels) for v in run31.violations] == [("within_run", ("1", "2", "3"))]
    assert last(series(*[(0.1, -1, 0)] * 6, targets=three), "6x").verdict == "reject"
    assert last(series(*[(0.1, -1, 0)] * 9, targets=three), "9x").verdict == "reject"
    assert last(series(*[(0.1, -1, 0)] * 8, targets=three), "9x").verdict == "accept"


def test_a_pattern_counts_only_when_it_ends_at_the_newest_value() -> None:
    """An old 4-1s or 2-2s does not fire again once the newest value breaks it."""
    runs = series(*[(2.5, 0.0)] * 4, (0.0, 0.0))
    results = evaluate_series(runs, parse_rules("4-1s,2-2s"))
    assert [r.verdict for r in results] == ["accept", "reject", "reject", "reject", "accept"]
    assert [sorted(v.rule for v in r.violations) for r in results[3:]] == [["2-2s", "4-1s"], []]
    # 2of3-2s across runs: the newest value must be one of the two.
    three = (LOW, HIGH, Target(50.0, 2.0, "M1"))
    assert (
        last(series((2.1, 0, 0), (2.2, 0, 0), (0.0, 0, 0), targets=three), "2of3-2s").verdict
        == "accept"
    )


def test_history_restarts_on_a_new_lot_or_target() -> None:
    """Points under an earlier lot are not part of a pattern for the new lot."""
    new_lot = Target(mean=102.0, sd=5.0, lot="L2")
    runs = series(*[(1.5, None)] * 3) + series((1.5, None), targets=(new_lot,), start=4)
    assert last(runs, "4-1s").verdict == "accept"
    runs += series((1.5, None), (1.5, None), (1.5, None), targets=(new_lot,), start=5)
    assert last(runs, "4-1s").violations[0].runs == ("r4", "r5", "r6", "r7")
    # A changed SD on the same lot restarts too.
    resized = Target(mean=100.0, sd=4.0, lot="L1")
    assert last(
        series((2.2, None)) + series((2.2, None), targets=(resized,), start=2), "2-2s"
    ).verdict == ("accept")


def test_every_selected_rule_is_reported_with_its_points() -> None:
    """One run can break several rules; all are reported (1-2s does not gate the others)."""
    result = last(series((2.5, 0.5), (3.1, -1.0)), "1-2s,1-3s,2-2s,R-4s")
    assert fired(result) == {
        ("1-2s", "point"),
        ("1-3s", "point"),
        ("2-2s", "across_runs"),
        ("R-4s", "within_run"),
    }
    assert result.verdict == "reject"


def test_engine_keeps_history_like_the_series() -> None:
    runs = series(*[(1.2, -0.3)] * 12)
    engine = Engine(ALL)
    assert [engine.add(r) for r in runs] == evaluate_series(runs, ALL)


def test_parse_rules_names_the_bad_one() -> None:
    assert [r.name for r in parse_rules("1-3s, 2:2s ,r-4s,10X")] == ["1-3s", "2-2s", "R-4s", "10x"]
    with pytest.raises(RuleError, match="'1-4s'") as info:
        parse_rules("1-3s,1-4s")
    assert info.value.name == "1-4s"
    with pytest.raises(RuleError):
        parse_rules(" , ")


@pytest.mark.parametrize(
    ("tea", "bias", "cv", "rules", "n"),
    [
        (10.0, 1.0, 1.5, "1-3s", 2),  # sigma 6.0 exactly
        (10.0, 1.0, 1.8, "1-3s,2-2s,R-4s", 2),  # 5.0
        (10.0, 2.0, 2.0, "1-3s,2-2s,R-4s,4-1s", 4),  # 4.0
        (10.0, 1.0, 2.5, "1-3s,2-2s,R-4s,4-1s,8x", 4),  # 3.6
    ],
)
def test_suggest_rules_follows_the_sigma_bands(
    tea: float, bias: float, cv: float, rules: str, n: int
) -> None:
    """Westgard Sigma Rules (westgard.com): bands at 6, 5, 4 sigma; bias counts as |bias|."""
    suggestion = suggest_rules(tea, bias, cv)
    assert (suggestion.rules, suggestion.n) == (rules, n)
    assert sigma_metric(tea, -bias, cv) == pytest.approx(suggestion.sigma)
    parse_rules(suggestion.rules)


# --- properties ----------------------------------------------------------------------------

UNIT = Target(0.0, 1.0, "U")
zs = st.floats(min_value=-4.0, max_value=4.0, allow_nan=False)


def unit_series(pairs: Sequence[tuple[float, float]]) -> list[Run]:
    return [
        Run(f"r{i}", {"1": Control(a, UNIT), "2": Control(b, UNIT)})
        for i, (a, b) in enumerate(pairs)
    ]


def rules_fired(results: list[RunResult]) -> list[set[tuple[str, str, tuple[str, ...]]]]:
    return [{(v.rule, v.scope, v.runs) for v in r.violations} for r in results]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(*[st.floats(-1.99, 1.99)] * 2), min_size=1, max_size=15),
    st.floats(-0.99, 0.99),
)
def test_shift_inside_1_sd_never_adds_a_1_3s(pairs: list[tuple[float, float]], c: float) -> None:
    shifted = [(a + c, b + c) for a, b in pairs]
    assert not any(
        v.rule == "1-3s" for r in evaluate_series(unit_series(shifted), ALL) for v in r.violations
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(*[st.floats(-0.999, 0.999)] * 2), min_size=1, max_size=15))
def test_inside_1_sd_only_mean_rules_can_fire(pairs: list[tuple[float, float]]) -> None:
    for result in evaluate_series(unit_series(pairs), ALL):
        assert {v.rule for v in result.violations} <= {"6x", "8x", "9x", "10x", "12x"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(zs, zs), min_size=1, max_size=15))
def test_mirrored_values_give_mirrored_violations(pairs: list[tuple[float, float]]) -> None:
    mirrored = [(-a, -b) for a, b in pairs]
    assert rules_fired(evaluate_series(unit_series(pairs), ALL)) == rules_fired(
        evaluate_series(unit_series(mirrored), ALL)
    )


def test_published_example_three_levels_in_one_run_break_2_2s() -> None:
    """'Westgard System and Rules' (course handout, studylib.net/doc/7876160): three levels with
    100 +- 5, 150 +- 8 and 200 +- 10; "In Run A, the results are 111, 267, and 202", given as
    an example of 2-2s applied across the levels of one run (111 is +2.2 SD; 267 as printed is
    +14.6 SD, likely a typo for 167 = +2.1 SD: either way two levels exceed the same +2s).
    """
    three = (Target(100.0, 5.0), Target(150.0, 8.0), Target(200.0, 10.0))

    def run_a(middle: float) -> list[Run]:
        values = (111.0, middle, 202.0)
        return [
            Run(
                "A",
                {
                    str(i + 1): Control(v, t)
                    for i, (v, t) in enumerate(zip(values, three, strict=True))
                },
            )
        ]

    for middle in (267.0, 167.0):
        assert [(v.rule, v.scope, v.levels) for v in last(run_a(middle), "2-2s").violations] == [
            ("2-2s", "within_run", ("1", "2"))
        ]
    # As printed, 267 is also 14.4 SD above 202: R-4s in its range form, not in the strict one.
    assert last(run_a(267.0), "R-4s").verdict == "reject"
    assert last(run_a(267.0), parse_rules("R-4s", strict_r4s=True)).verdict == "accept"
    assert last(run_a(167.0), "R-4s").verdict == "accept"
