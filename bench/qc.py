"""QC bench: the Westgard engine over a long two-level series against westgard-python.

Both engines get the same series (values with the level's mean and SD) and the rules they share:
1-3s, 2-2s, R-4s (strict form: westgard-python's reading), 4-1s, 8x, 10x, 12x, 2of3-2s, 3-1s,
6x, 9x. 1-2s is left out of the comparison because westgard-python uses it as the classic gate
(with it selected, its other rules run only on a 1-2s run); Trygg evaluates every rule on every
run. The bench checks that both flag the same rules on the same runs and lists where they
differ, by rule and scope, with a first example each.

westgard-python copies each level's whole history into every event (quadratic in the series
length), so it is fed the series in chunks of CHUNK runs, each preceded by the WARM runs before
it (more than the longest window): its verdicts from the warm-up are dropped, the rest are
exactly what a single pass would give, and its timing includes the warm-up (about 1 %).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.report import Figure, Reporter
from gateway.qc.westgard import Control, Run, Target, evaluate_series, parse_rules

NAME = "qc"
RUNS = 100_000
QUICK_RUNS = 3_000
CHUNK = 2_000
WARM = 16
SHARED = "1-3s,2-2s,R-4s,4-1s,8x,10x,12x,2of3-2s,3-1s,6x,9x"
FULL = "1-2s," + SHARED
LEVELS = {"L1": Target(100.0, 5.0, "lot-1"), "L2": Target(200.0, 10.0, "lot-2")}
#: westgard-python's scope names -> Trygg's
SCOPES = {
    "within_run": "within_run",
    "within_material": "across_runs",
    "across_material": "across_levels",
}

Key = tuple[str, str]  # (run id, rule)


def make_series(n: int, seed: int = 11) -> list[Run]:
    """Mostly in control, with shifts (systematic) and wide spells (random) so rules fire."""
    rng = random.Random(seed)
    runs: list[Run] = []
    shift, spell = 0.0, 0
    for i in range(n):
        if spell == 0 and rng.random() < 0.01:
            shift, spell = rng.choice((-1.8, -1.2, 1.2, 1.8)), rng.randint(3, 14)
        if spell:
            spell -= 1
        else:
            shift = 0.0
        width = 2.2 if rng.random() < 0.03 else 1.0
        controls = {
            level: Control(t.mean + (shift + rng.gauss(0.0, width)) * t.sd, t)
            for level, t in LEVELS.items()
        }
        runs.append(Run(f"r{i}", controls))
    return runs


def ours(runs: Sequence[Run], spec: str, *, strict: bool) -> tuple[float, dict[Key, set[str]]]:
    rules = parse_rules(spec, strict_r4s=strict)
    started = time.perf_counter()
    results = evaluate_series(runs, rules)
    elapsed = time.perf_counter() - started
    found: dict[Key, set[str]] = {}
    for result in results:
        for v in result.violations:
            found.setdefault((result.run_id, v.rule), set()).add(v.scope)
    return elapsed, found


def _peer_rule(name: str) -> str:
    return (
        name.replace("-", "_").replace("x", "_x") if name.endswith("x") else name.replace("-", "_")
    )


def peer(runs: Sequence[Run], spec: str) -> tuple[float, dict[Key, set[str]]] | None:
    try:
        import westgard
        from westgard.models import EvaluationScope, RuleName
    except ImportError:
        return None
    names = [_peer_rule(n) for n in spec.split(",")]
    rule_set = westgard.custom_rule_set_from_rules(
        rules=tuple(RuleName(n) for n in names),
        enabled_scopes=(
            EvaluationScope.WITHIN_RUN,
            EvaluationScope.WITHIN_MATERIAL,
            EvaluationScope.ACROSS_MATERIAL,
        ),
    )
    chunks = []
    for start in range(0, len(runs), CHUNK):
        lead = max(0, start - WARM)
        rows = [
            westgard.ObservationRow(
                analyte="A",
                material=level,
                run_id=run.run_id,
                sequence=2 * i + j,
                value=c.value,
                mean=c.target.mean,
                standard_deviation=c.target.sd,
            )
            for i, run in enumerate(runs[lead : start + CHUNK], start=lead)
            for j, (level, c) in enumerate(sorted(run.controls.items()))
        ]
        chunks.append((start - lead, westgard.series_from_rows(rows)["A"]))
    found: dict[Key, set[str]] = {}
    started = time.perf_counter()
    outputs = [
        (skip, westgard.evaluate_custom_rule_sequence(series=s, rule_set=rule_set))
        for skip, s in chunks
    ]
    elapsed = time.perf_counter() - started
    back = {_peer_rule(n): n for n in spec.split(",")}
    for skip, events in outputs:
        for event in events[skip:]:
            for v in event.violations:
                key = (event.event.run_id.value, back[v.rule.value])
                found.setdefault(key, set()).add(SCOPES.get(v.scope.value, v.scope.value))
    return elapsed, found


def differences(
    mine: dict[Key, set[str]], theirs: dict[Key, set[str]]
) -> tuple[Counter[str], dict[str, Key]]:
    """Per 'rule: only in X (scope)' the count and a first example run."""
    counts: Counter[str] = Counter()
    first: dict[str, Key] = {}
    for key in sorted(mine.keys() | theirs.keys(), key=lambda k: (int(k[0][1:]), k[1])):
        a, b = mine.get(key), theirs.get(key)
        if a and b:
            continue
        label = f"{key[1]}: only Trygg {sorted(a or ())}" if a else ""
        label = label or f"{key[1]}: only westgard-python {sorted(b or ())}"
        counts[label] += 1
        first.setdefault(label, key)
    return counts, first


def _say_runs(reporter: Reporter, runs: Iterable[Run], key: Key) -> None:
    run_id = key[0]
    index = int(run_id[1:])
    shown = [
        f"{r.run_id}:" + ",".join(f"{lv}={c.z:+.2f}" for lv, c in sorted(r.controls.items()))
        for r in list(runs)[max(0, index - 11) : index + 1]
    ]
    reporter.say("      z up to " + run_id + ": " + " ".join(shown))


def run(reporter: Reporter, *, quick: bool, directory: Path, **_: Any) -> bool:
    n = QUICK_RUNS if quick else RUNS
    runs = make_series(n)
    reporter.say(f"{NAME}: {n:,} runs, two levels; shared rules {SHARED}")
    t_full, found_full = ours(runs, FULL, strict=False)
    t_ours, mine = ours(runs, SHARED, strict=True)
    measured = peer(runs, SHARED)
    flagged = len({k[0] for k in found_full})
    reporter.emit(Figure(NAME, "runs_with_violations_full_rule_set", flagged, "runs"))
    reporter.emit(Figure(NAME, "engine_full_rule_set", n / t_full, "runs/s"))
    if measured is None:
        reporter.say(f"{NAME}: westgard-python is not installed (pip install westgard-python)")
        reporter.emit(Figure(NAME, "engine_shared_rules", n / t_ours, "runs/s"))
        return True
    t_peer, theirs = measured
    reporter.emit(
        Figure(
            NAME,
            "engine_shared_rules",
            n / t_ours,
            "runs/s",
            peer="westgard-python",
            peer_value=n / t_peer,
            note="target >= 3x",
        )
    )
    counts, first = differences(mine, theirs)
    runs_differ = len({key[0] for key in _all_diff_keys(mine, theirs)})
    agree = 100.0 * (n - runs_differ) / n
    reporter.emit(Figure(NAME, "runs_with_the_same_violations", agree, "%"))
    reporter.say(
        f"{NAME}: Trygg flagged {len(mine):,} (run, rule), westgard-python {len(theirs):,}"
    )
    for label, count in counts.most_common():
        reporter.say(f"    {count:>6} x {label}; first at {first[label][0]}")
        _say_runs(reporter, runs, first[label])
    return True


def _all_diff_keys(mine: dict[Key, set[str]], theirs: dict[Key, set[str]]) -> list[Key]:
    return [k for k in mine.keys() | theirs.keys() if not (mine.get(k) and theirs.get(k))]
