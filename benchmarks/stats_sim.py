"""Simulations with known truth for the verdicts of ``sweeper.stats``: calibration, ROPE, racing, speed.

    python benchmarks/stats_sim.py              # 1,000 studies per cell (a few minutes on 2 cores)
    python benchmarks/stats_sim.py --quick      # 200 studies per cell
    python benchmarks/stats_sim.py --studies 500 --seed 1

Noise model: a run's mIoU is the candidate's true mean plus independent normal noise of sd
``sigma`` (per candidate where a table says so). Racing is simulated as ``tune`` runs it: every
candidate screened with one seed, then one unit at a time as :func:`sweeper.stats.next_candidates`
asks, up to 5 seeds; an ablation (section 6) as ``ablate`` runs it, 3 first seeds then
:func:`sweeper.stats.next_arms` up to 10. Every figure printed is measured in this run; none is fixed in the code.
Each rate comes with its 95% Wilson interval, so "5.3% [4.1%, 6.8%]" can be read against a 5% goal.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sweeper import stats as S  # noqa: E402

console = Console(width=150)
ALPHA = 0.05
MAX_SEEDS = 5


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a rate."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def rate(hits: int, n: int) -> str:
    lo, hi = wilson(hits, n)
    return f"{100 * hits / n:.1f}% [{max(0.0, 100 * lo):.1f}, {min(100.0, 100 * hi):.1f}]"


def race(mu: np.ndarray, sd: np.ndarray, rope: float, rng: np.random.Generator) -> np.ndarray:
    """One racing study: screening with seed 0, then one unit at a time; the (seeds, k) values."""
    k = mu.size
    x = np.full((MAX_SEEDS, k), np.nan)
    x[0] = mu + rng.normal(0, 1, k) * sd
    n = np.ones(k, dtype=int)
    while (nxt := S.next_candidates(x, MAX_SEEDS, slots=1, rope=rope)).size:
        i = int(nxt[0])
        x[n[i], i] = mu[i] + rng.normal() * sd[i]
        n[i] += 1
    return x


def naive_flags(x: np.ndarray) -> bool:
    """The naive reading: any one-sided paired t-test against the observed best, Holm, p < 5%."""
    comp = S.compare_to_best(x, n_boot=0)
    return bool(np.nanmin(comp.p_holm) < ALPHA) if np.isfinite(comp.p_holm).any() else False


# --------------------------------------------------------------------------- 1. null calibration


def null_calibration(studies: int, rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    sigma = 0.004
    table = Table(title=f"1. Null: all candidates equal (mean 0.70, sigma {sigma}), ROPE 0. Share of studies "
                  "with ANY candidate marked worse. Goal <= 5% plus simulation error.", title_justify="left")
    for col in ("design", "k", "seeds", "verdicts (max-var Tukey-Kramer)", "naive paired t + Holm", "goal"):
        table.add_column(col, justify="left" if col == "design" else "right")
    goals = []
    designs = [("balanced", 10), ("balanced", 40), ("one candidate 3x noisier", 10),
               ("half the candidates 2x noisier", 10), ("half the candidates 2x noisier", 40)]
    for design, k in designs:
        for n in (3, 5, 10):
            sd = np.full(k, sigma)
            if design.startswith("one"):
                sd[0] *= 3
            elif design.startswith("half"):
                sd[: k // 2] *= 2
            hits = naive = 0
            for _ in range(studies):
                x = 0.70 + rng.normal(0, 1, (n, k)) * sd
                hits += (S.decide(x, rope=0.0).verdict == S.WORSE).any()
                naive += naive_flags(x)
            ok = wilson(hits, studies)[0] <= ALPHA
            table.add_row(design, str(k), str(n), rate(hits, studies), rate(naive, studies),
                          "met" if ok else "NOT MET")
            goals.append((f"null, {design}, k={k}, n={n}", ok, rate(hits, studies)))
    for k in (10, 40):
        hits = 0
        runs = 0
        for _ in range(studies):
            x = race(np.full(k, 0.70), np.full(k, sigma), 0.0, rng)
            runs += np.isfinite(x).sum()
            hits += (S.decide(x, rope=0.0).verdict == S.WORSE).any()
        ok = wilson(hits, studies)[0] <= ALPHA
        table.add_row("racing-produced: 1 screening seed, racing to 5", str(k), f"{runs / studies / k:.1f} avg",
                      rate(hits, studies), "—", "met" if ok else "NOT MET")
        goals.append((f"null, racing-produced data, k={k}", ok, rate(hits, studies)))
    console.print(table)
    console.print("'met' means the rate's interval reaches down to 5% or below. The naive column shows why the "
                  "verdicts do not read p-values one at a time: it ignores that the best was picked.\n")
    return goals


# --------------------------------------------------------------------------- 2. the ROPE


def rope_goals(studies: int, rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    rope = 0.01
    table = Table(title=f"2. With the default ROPE {rope}: how often a candidate at a known true gap ends worse",
                  title_justify="left")
    for col in ("scenario", "design", "P(marked worse)", "goal", "met"):
        table.add_column(col, justify="left" if col in ("scenario", "design") else "right")
    goals = []
    mu_close = np.r_[0.70, 0.695, np.linspace(0.69, 0.66, 8)]  # candidate 1 is 0.005 behind
    mu_far = np.r_[0.70, 0.67, np.linspace(0.695, 0.66, 8)]  # candidate 1 is 0.03 behind
    cases = [
        ("0.005 behind the best (inside the ROPE), sigma 0.005", mu_close, 0.005, "<= 5%", lambda r: r <= ALPHA),
        ("0.03 behind the best, sigma 0.005", mu_far, 0.005, ">= 90%", lambda r: r >= 0.90),
    ]
    for title, mu, sigma, goal, check in cases:
        sd = np.full(mu.size, sigma)
        for design in ("racing to 5 seeds", "uniform 5 seeds"):
            hits = 0
            for _ in range(studies):
                x = race(mu, sd, rope, rng) if design.startswith("racing") else mu + rng.normal(0, 1, (5, mu.size)) * sd
                hits += S.decide(x, rope=rope).verdict[1] == S.WORSE
            lo, hi = wilson(hits, studies)
            ok = check(lo) if goal.startswith("<=") else check(hi)
            table.add_row(title, design, rate(hits, studies), goal, "met" if ok else "NOT MET")
            if design.startswith("racing"):
                goals.append((title, ok, rate(hits, studies)))
    console.print(table)
    console.print("Ten candidates each; the others spread below the best. 'worse' claims the gap exceeds the ROPE, so "
                  "at a true gap of 0.005 every such mark is an error.\n")
    return goals


# --------------------------------------------------------------------------- 3. racing


def racing(studies: int, rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    rope = 0.01
    scenarios = {
        "A: 20 candidates spread evenly over 0.70..0.65, sigma 0.004": (np.linspace(0.70, 0.65, 20), 0.004),
        "B: best 0.70, 9 at 0.02 (4 sigma) below, 10 spread 0.03..0.06 below, sigma 0.005":
            (np.r_[0.70, np.full(9, 0.68), np.linspace(0.67, 0.64, 10)], 0.005),
        "C: least favourable: best 0.70, 19 at 0.689 (ROPE + 0.001 below), sigma 0.004":
            (np.r_[0.70, np.full(19, 0.689)], 0.004),
    }
    table = Table(title=f"3. Racing by the verdicts vs uniform repeats (5 seeds each), ROPE {rope}, {studies} studies. "
                  "Goals: the final best within the ROPE of the true best >= 97%; racing decides at least as many "
                  "candidates as uniform, with <= 50% of its runs", title_justify="left")
    for col in ("scenario", "P(best within ROPE) racing", "uniform", "decided racing", "uniform",
                "runs: % of uniform", "false worse (any)", "goals"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    goals = []
    for title, (mu, sigma) in scenarios.items():
        sd = np.full(mu.size, sigma)
        within = within_u = 0
        decided = decided_u = 0.0
        runs = 0
        false_worse = 0
        for _ in range(studies):
            x = race(mu, sd, rope, rng)
            v = S.decide(x, rope=rope)
            runs += np.isfinite(x).sum()
            within += mu.max() - mu[v.best] <= rope
            decided += np.isin(v.verdict, (S.WORSE, S.EQUIVALENT)).sum()
            false_worse += ((v.verdict == S.WORSE) & (mu[v.best] - mu <= rope)).any()
            xu = mu + rng.normal(0, 1, (MAX_SEEDS, mu.size)) * sd
            vu = S.decide(xu, rope=rope)
            within_u += mu.max() - mu[vu.best] <= rope
            decided_u += np.isin(vu.verdict, (S.WORSE, S.EQUIVALENT)).sum()
        share = runs / studies / (MAX_SEEDS * mu.size)
        lo, hi = wilson(within, studies)
        ok_pick = hi >= 0.97
        # "At least as many": within simulation noise (2%, or 0.05 candidates per study near zero).
        ok_decided = decided / studies >= decided_u / studies - max(0.02 * decided_u / studies, 0.05)
        ok_runs = share <= 0.50
        table.add_row(title, rate(within, studies), rate(within_u, studies), f"{decided / studies:.2f}",
                      f"{decided_u / studies:.2f}", f"{100 * share:.0f}%", rate(false_worse, studies),
                      " / ".join("met" if ok else "NOT MET" for ok in (ok_pick, ok_decided, ok_runs)))
        goals.append((f"racing {title[:1]}: best within ROPE", ok_pick, rate(within, studies)))
        goals.append((f"racing {title[:1]}: decided vs uniform, runs", ok_decided and ok_runs,
                      f"{decided / studies:.2f} vs {decided_u / studies:.2f}, {100 * share:.0f}% of runs"))
    console.print(table)
    console.print("Decided = candidates ending 'worse' or 'equivalent'. Racing stops giving seeds to a candidate once "
                  "it is decided, or once 1.3x the budget would still not decide it. In C every candidate sits "
                  "0.001 beyond the ROPE: hardly anything is decidable there with 5 seeds, by either design.\n")
    return goals


# --------------------------------------------------------------------------- 4. intervals and speed


def coverage(studies: int, rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    table = Table(title="4. Coverage of the 95% CI of a candidate's mean (sigma 0.01)", title_justify="left")
    for col in ("seeds", "t interval (default below 10)", "percentile bootstrap"):
        table.add_column(col, justify="right")
    goals = []
    for n in (3, 5, 10):
        x = 0.70 + rng.normal(0, 0.01, (n, studies))
        t = S.summarize(x, method="t")
        b = S.summarize(x, method="bootstrap", n_boot=500)
        ct = int(((t.ci_low <= 0.70) & (0.70 <= t.ci_high)).sum())
        cb = int(((b.ci_low <= 0.70) & (0.70 <= b.ci_high)).sum())
        table.add_row(str(n), rate(ct, studies), rate(cb, studies))
        if n < 10:
            goals.append((f"t interval covers ~95% at {n} seeds", wilson(ct, studies)[1] >= 0.95, rate(ct, studies)))
    console.print(table)
    return goals


def speed(rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    k, n = 1000, 10
    x = np.linspace(0.75, 0.60, k) + rng.normal(0, 0.004, (n, k))
    names = [f"c{i}" for i in range(k)]
    t0 = time.perf_counter()
    S.rank_candidates(x, names)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(3):
        t0 = time.perf_counter()
        S.rank_candidates(x, names)
        warm.append(time.perf_counter() - t0)
    table = Table(title=f"5. Speed: rank_candidates on {k} candidates x {n} seeds (verdicts, intervals, reference "
                  "tests), goal <= 1 s", title_justify="left")
    for col in ("first call (builds quadrature tables)", "median of 3 later calls"):
        table.add_column(col, justify="right")
    table.add_row(f"{cold:.2f} s", f"{sorted(warm)[1]:.2f} s")
    console.print(table)
    return [("ranking 1000 x 10 <= 1 s", cold <= 1.0, f"{cold:.2f} s cold, {sorted(warm)[1]:.2f} s warm")]


# --------------------------------------------------------------------------- 6. ablation


def ablation_race(mu: np.ndarray, sd: np.ndarray, rope: float, rng: np.random.Generator, first: int = 3,
                  max_seeds: int = 10) -> np.ndarray:
    """One ``sweeper ablate`` study: every arm on the first seeds, then one unit at a time as
    :func:`sweeper.stats.next_arms` asks (the baseline runs a seed before the first arm using it)."""
    x = np.full((max_seeds, mu.size), np.nan)
    x[:first] = mu + rng.normal(0, 1, (first, mu.size)) * sd
    while (nxt := S.next_arms(x, max_seeds, rope=rope)).size:
        j = int(nxt[0])
        row = int(np.isfinite(x[:, j]).sum())
        if np.isnan(x[row, 0]):
            x[row, 0] = mu[0] + rng.normal() * sd[0]
        x[row, j] = mu[j] + rng.normal() * sd[j]
    return x


def ablation_null(studies: int, rng: np.random.Generator) -> list[tuple[str, bool, str]]:
    sigma, rope = 0.01, 0.01
    table = Table(title=f"6. Ablation null: no change has an effect (every arm 0.70, sigma {sigma} unless noted). "
                  "Share of studies with ANY arm marked better or worse (ROPE 0.01), and with ANY arm's interval "
                  "excluding 0 (ROPE 0: the Dunnett control itself). Goal <= 5% plus simulation error.",
                  title_justify="left")
    for col in ("design", "k arms", "seeds", f"any better/worse, ROPE {rope}", "any interval excludes 0", "goal"):
        table.add_column(col, justify="left" if col == "design" else "right")
    goals = []
    designs = [("equal noise", None), ("one arm 3x noisier", 1), ("baseline 3x noisier", 0)]
    for design, loud in designs:
        for k in (5, 10):
            sd = np.full(k + 1, sigma)
            if loud is not None:
                sd[loud] *= 3
            for n in (3, 5, 10):
                hits = hits0 = 0
                for _ in range(studies):
                    res = S.compare_to_baseline(0.70 + rng.normal(0, 1, (n, k + 1)) * sd, rope=rope)
                    hits += any(a.verdict in (S.BETTER, S.WORSE) for a in res.arms)
                    # The interval does not depend on the ROPE: ROPE 0 reads the same intervals.
                    hits0 += any(a.low > 0 or a.high < 0 for a in res.arms)
                ok = wilson(hits, studies)[0] <= ALPHA and wilson(hits0, studies)[0] <= ALPHA
                table.add_row(design, str(k), str(n), rate(hits, studies), rate(hits0, studies),
                              "met" if ok else "NOT MET")
                goals.append((f"ablation null, {design}, k={k}, n={n}: ROPE {rope} / ROPE 0", ok,
                              f"{rate(hits, studies)} / {rate(hits0, studies)}"))
    # Racing at half the ROPE's noise, where extra seeds do decide (at sigma 0.01 the null arms are
    # mostly hopeless after 3 seeds and get none): every look at the data is a chance to be wrong.
    k, race_sigma = 5, 0.005
    for r in (rope, 0.0):
        hits = runs = 0
        for _ in range(studies):
            x = ablation_race(np.full(k + 1, 0.70), np.full(k + 1, race_sigma), r, rng)
            runs += np.isfinite(x).sum()
            hits += any(a.verdict in (S.BETTER, S.WORSE) for a in S.compare_to_baseline(x, rope=r).arms)
        ok = wilson(hits, studies)[0] <= ALPHA
        cells = (rate(hits, studies), "—") if r else ("—", rate(hits, studies))
        table.add_row(f"ablate's plan, sigma {race_sigma}, ROPE {r}", str(k),
                      f"{runs / studies / (k + 1):.1f} avg", *cells, "met" if ok else "NOT MET")
        goals.append((f"ablation null, ablate's plan, k={k}, ROPE {r}", ok, rate(hits, studies)))
    console.print(table)
    x = 0.70 + rng.normal(0, sigma, (10, 11))
    x[4:, 6:] = np.nan
    S.compare_to_baseline(x)
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        S.compare_to_baseline(x)
        times.append(time.perf_counter() - t0)
    warm = sorted(times)[10]
    console.print("Intervals: Dunnett many-to-one, paired by seed, each side's variance floored at the pool "
                  "(max-var). 'met' means the rate's interval reaches down to 5% or below. ablate's plan: the final "
                  "verdicts after 3 seeds for every arm, then extra seeds as next_arms asks, up to 10. "
                  "compare_to_baseline on 10 seeds x 11 arms (half the arms with 4 seeds): "
                  f"{1e3 * warm:.1f} ms per call (median of 20, warm cache).\n")
    goals.append(("ablation: compare_to_baseline 10 x 11 <= 20 ms", warm <= 0.02, f"{1e3 * warm:.1f} ms"))
    return goals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=None, help="studies per cell (default 1000, --quick 200)")
    parser.add_argument("--quick", action="store_true", help="200 studies per cell")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation generator")
    args = parser.parse_args(argv)
    studies = args.studies or (200 if args.quick else 1000)
    if studies < 1:
        parser.error("--studies must be >= 1")
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    goals = null_calibration(studies, rng) + rope_goals(studies, rng) + racing(studies, rng)
    goals += coverage(studies, rng) + speed(rng)
    goals += ablation_null(studies, rng)
    summary = Table(title="Goals", title_justify="left")
    for col in ("goal", "measured", "result"):
        summary.add_column(col)
    for name, ok, measured in goals:
        summary.add_row(name, measured, "met" if ok else "NOT MET")
    console.print(summary)
    console.print(f"total {time.perf_counter() - start:.0f} s, {studies} studies per cell, seed {args.seed}; "
                  f"{sum(ok for _, ok, _ in goals)} of {len(goals)} goals met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
