"""A catalogue, three ways: compute spent and P(the final ★ is within the ROPE of the best).

    python benchmarks/catalogue.py                      # 200 studies per setting, 100 candidates (~1 min, 2 cores)
    python benchmarks/catalogue.py --calibration demo   # the demo recipe's figures instead of zoo-50m's
    python benchmarks/catalogue.py --quick              # 60 studies per setting
    python benchmarks/catalogue.py --ladders "1,3;1;3" --keeps 0.1,0.25,0.33   # other rungs and keeps
    python benchmarks/catalogue.py --calibrate /tmp/fid/f.db --study demo-fidelity   # figures from your study
    python benchmarks/catalogue.py --rho 0.5,0.8 --seed-sd 0.0095,0.0126,0.0126      # what-if, marked as such
    python benchmarks/catalogue.py --grid --keeps 0.2,0.25,0.33   # what-if: which rung correlations meet the goal

Strategies, on the same simulated candidates and the same simulated runs (common random numbers:
a candidate's seed-0 full-budget run is the same run in every strategy):

- **once**: every candidate once at the full budget, ★ = the best single run (the usual practice);
- **uniform 5**: every candidate with 5 seeds at the full budget, ★ = the best mean;
- **sweeper**: the REAL :class:`~sweeper.sweep.plans.ScreenThenRace` plan (rungs, then racing
  repeats up to 5 seeds by :func:`sweeper.stats.next_candidates`), driven by a stub runner that
  looks each run's value up instead of training; ★ = ``rank_records(records).best_key``, the
  table's best. Its compute is the epochs of every unit the plan asked for.

"Within the ROPE" means the ★'s true full-budget mean is at most ``rope`` (0.01 mIoU) below the
true best's. Compute is training epochs, as a share of "once" (every candidate x full budget).
The goal of the issue: sweeper's P within 2 points of uniform 5's, for <= 35% of "once"'s compute.

**Real and simulated.** The figures the simulation is calibrated on are real, measured with
``sweeper fidelity`` (rungs of 1 and 3 epochs and a full budget of 8, each trained from scratch
as tune's rungs are): :data:`MEASURED_ZOO` (the default, ``--calibration zoo-recipe``) with
zoo-50m's recipe on 960 demo images, 10 pairs x 2 seeds; :data:`MEASURED` (``--calibration
demo``) with the demo recipe on the demo data, 6 pairs x 3 seeds; or recomputed from any fidelity
study with ``--calibrate``. From them: the seed sd at each budget, the spread of
the candidates' true means, and the correlation of a candidate's true mean at each rung with its
true full-budget mean (disattenuated for seed noise). Everything else is simulated: a catalogue of
``--candidates`` whose true full-budget means are normal with the measured spread; a candidate's
rung means follow a Markov chain down from the full budget (rung 3 correlates ``rho_3`` with the
full budget, rung 1 ``rho_1 / rho_3`` with rung 3, so ``rho_1`` with the full budget) where the
measured correlations allow it (else independent given the full budget); a run is its true mean
at its budget plus normal seed noise of that budget's measured sd, independent across seeds and
candidates; one seed's deviation at a rung correlates with its deviation at the full budget as
measured (``noise_corr``: the runs share initial weights and data order).
The simulation is not tuned to meet the goal: the parameters printed are the measured ones;
``--rho`` and ``--seed-sd`` replace them for a what-if, and ``--grid`` runs zoo-50m's ladder over
a grid of rung correlations with the Kendall tau a 10 x 2 fidelity check would show at each;
the output then says so. Under a constant learning rate (the zoo recipe) sweeper lets each rung go
on from the one before (:mod:`sweeper.sweep.states`; the runs are the same bit for bit, see
:data:`MEASURED_ZOO`), so its compute there is the epochs it adds, and the goal is judged on that;
the column "from scratch" is what the same decisions cost under a schedule, and "of which racing"
the share of racing's repeats at the full budget. Where sweeper's misses come from: "kept one in
ROPE" is how often a candidate within the ROPE of the best reached the full budget (the most any
racing could score), and "5 seeds on finalists" what the best mean of 5 seeds of every finalist
would score: uniform 5's P minus that is the rungs' share of the loss, that minus sweeper's P
racing's (its repeats stop before 5 seeds where they can). ``--calibration
zoo-epochs`` reads every epoch of the calibration's full runs as a budget (exact under a constant
learning rate), and ``--search`` tries every ladder of up to three of those rungs with every
keep, then re-runs its Pareto front on fresh catalogues. Every rate
comes with its 95% Wilson interval; the paired column is sweeper's hit minus uniform 5's, study by
study, with a normal 95% interval.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.stats_sim import rate  # noqa: E402

console = Console(width=170)
ROPE = 0.01
MAX_SEEDS = 5
#: zoo-50m's screen: rungs of 1 and 3 epochs before the full budget of 8, keep 0.5.
ZOO_RUNGS, ZOO_FULL, ZOO_KEEP = (1, 3), 8, 0.5
GOAL_POINTS, GOAL_COST = 0.02, 0.35


@dataclass(frozen=True)
class Calibration:
    """The real figures the simulation follows, per budget (cheap rungs first, the full budget
    last): ``level`` mean mIoU, ``spread`` sd of the candidates' true means, ``seed_sd`` sd of a
    run around its candidate's mean, and per cheap rung ``rho`` (the correlation of true means with
    the full budget's, disattenuated), ``rho_raw`` (of the observed means), ``tau`` (Kendall's tau of
    single runs, :func:`sweeper.stats.fidelity.kendall_tau`) and ``noise_corr`` (the correlation of
    one seed's deviations at the rung and at the full budget)."""

    source: str
    budgets: tuple[int, ...]
    candidates: int
    seeds: int
    level: tuple[float, ...]
    spread: tuple[float, ...]
    seed_sd: tuple[float, ...]
    rho: tuple[float, ...]
    rho_raw: tuple[float, ...]
    tau: tuple[float, ...]
    noise_corr: tuple[float, ...]
    curves: str = ""
    #: Whether the recipe's learning rate is constant (scheduler none): then a rung's run is the
    #: first epochs of the full run, bit for bit, and continuing it would change only the cost.
    constant_lr: bool = False
    #: The measured correlation of one seed's deviations between every two budgets (rows and
    #: columns in ``budgets`` order), when known; without it a rung's noise correlates with the
    #: full budget's by ``noise_corr`` and with other rungs' only through it.
    noise_matrix: tuple[tuple[float, ...], ...] | None = None
    #: Whether the cheap budgets are the first epochs of the full-budget runs (``--prefixes``)
    #: rather than runs of their own.
    prefixes: bool = False


#: Measured 2026-12-01 on the demo data (its 6 pairs: unet, fpn, pspnet x mobilenet_v2, resnet18;
#: the demo recipe at 64 px, cosine schedule, with a full budget of 8 epochs; 54 runs on CPU) with
#: ``sweeper fidelity --space demo --epochs 8 --rungs 1,3 --candidates 6 --seeds 3``, then
#: ``--calibrate`` on that storage. Six candidates measure the correlations poorly: Kendall's tau of
#: rung 1 is -0.10 [-0.70, +0.56] and of rung 3 +0.42 [-0.03, +0.76] (95% bootstrap intervals).
MEASURED = Calibration(
    source="demo data, sweeper fidelity --epochs 8 --rungs 1,3 --candidates 6 --seeds 3 (2026-12-01)",
    budgets=(1, 3, 8), candidates=6, seeds=3,
    level=(0.1819, 0.3112, 0.3972), spread=(0.0464, 0.0539, 0.0169), seed_sd=(0.0095, 0.0173, 0.0310),
    rho=(-0.529, 0.829), rho_raw=(-0.361, 0.560), tau=(-0.099, 0.422), noise_corr=(-0.157, 0.250),
    curves="epoch 1 of an 8-epoch run vs its value: r = -0.13 (mean mIoU 0.166); epoch 3: r = 0.38 (mean mIoU "
           "0.322), over 18 runs",
)

#: Measured 2026-12-01 with zoo-50m's recipe (Adam 1e-4, constant learning rate, cross-entropy, 8
#: epochs, the competition augmentations) on 960 demo images at 64 px (120 steps an epoch, four
#: times the demo's), 10 pairs of 5 architectures x resnet18 / mobilenet_v2, 2 seeds, 60 runs on
#: CPU: ``benchmarks/spaces/calibration.yaml`` (its header has the commands). ``sweeper fidelity``
#: gave Kendall tau +0.38 [-0.02, +0.73] at rung 1 and +0.67 [+0.39, +0.90] at rung 3. Every one
#: of the 40 rung runs equals the first epochs of its full run bit for bit (val mIoU and train
#: loss of each epoch): with a constant learning rate a rung is a prefix of the full run.
MEASURED_ZOO = Calibration(
    source="zoo-50m's recipe on 960 demo images at 64 px, sweeper fidelity --space "
           "benchmarks/spaces/calibration.yaml --candidates 10 --seeds 2 (2026-12-01)",
    budgets=(1, 3, 8), candidates=10, seeds=2,
    level=(0.2240, 0.3048, 0.4287), spread=(0.0662, 0.0589, 0.1135), seed_sd=(0.0228, 0.0222, 0.0135),
    rho=(0.7073, 0.8630), rho_raw=(0.6848, 0.8309), tau=(0.3778, 0.6667), noise_corr=(-0.2049, -0.3596),
    curves="epoch 1 of an 8-epoch run vs its value: r = 0.66 (mean mIoU 0.224); epoch 3: r = 0.79 (mean mIoU "
           "0.304), over 20 runs",
    constant_lr=True,
)
#: :data:`MEASURED_ZOO`'s 20 full-budget runs read at every epoch (``--calibrate
#: /tmp/cal.db --prefixes``): a rung of e epochs is the first e epochs of the full run under its
#: constant learning rate, so each epoch is a measured budget, and a seed's deviations at every
#: two budgets are the same run's (``noise_matrix``). Rungs 1 and 3 equal MEASURED_ZOO's.
MEASURED_ZOO_EPOCHS = Calibration(
    source="zoo-50m's recipe on 960 demo images at 64 px, every epoch of the 20 full-budget runs of "
           "benchmarks/spaces/calibration.yaml (2026-12-01)",
    budgets=(1, 2, 3, 4, 5, 6, 7, 8), candidates=10, seeds=2,
    level=(0.2240, 0.2822, 0.3048, 0.3347, 0.3681, 0.3889, 0.4094, 0.4287),
    spread=(0.0662, 0.0674, 0.0589, 0.0664, 0.0802, 0.0920, 0.1024, 0.1135),
    seed_sd=(0.0228, 0.0164, 0.0222, 0.0217, 0.0165, 0.0212, 0.0148, 0.0135),
    rho=(0.7073, 0.8219, 0.8630, 0.8845, 0.9514, 0.9769, 0.9900),
    rho_raw=(0.6848, 0.8071, 0.8309, 0.8586, 0.9382, 0.9607, 0.9939),
    tau=(0.3778, 0.6444, 0.6667, 0.7111, 0.8222, 0.8444, 0.8889),
    noise_corr=(-0.2049, -0.0426, -0.3596, -0.3180, 0.4394, 0.4592, 0.6504),
    noise_matrix=((+1.000, +0.538, +0.224, +0.152, -0.005, -0.160, +0.437, -0.205),
                  (+0.538, +1.000, +0.821, +0.748, +0.367, +0.144, +0.220, -0.043),
                  (+0.224, +0.821, +1.000, +0.920, +0.223, +0.137, -0.106, -0.360),
                  (+0.152, +0.748, +0.920, +1.000, +0.397, -0.048, -0.197, -0.318),
                  (-0.005, +0.367, +0.223, +0.397, +1.000, +0.118, +0.310, +0.439),
                  (-0.160, +0.144, +0.137, -0.048, +0.118, +1.000, +0.546, +0.459),
                  (+0.437, +0.220, -0.106, -0.197, +0.310, +0.546, +1.000, +0.650),
                  (-0.205, -0.043, -0.360, -0.318, +0.439, +0.459, +0.650, +1.000)),
    constant_lr=True, prefixes=True,
)
#: The calibrations by name (``--calibration``); the first is the default.
CALIBRATIONS = {"zoo-recipe": MEASURED_ZOO, "zoo-epochs": MEASURED_ZOO_EPOCHS, "demo": MEASURED}


def calibrate(values: dict[int, np.ndarray], full_epochs: int, source: str, curves: str = "") -> Calibration:
    """The simulation's figures from a fidelity study's runs: ``values[budget]`` is a (seeds x
    candidates) array of val mIoU, NaN where a run is missing; ``full_epochs`` the full budget."""
    from sweeper.stats.fidelity import kendall_tau

    budgets = tuple(sorted(values))
    if budgets[-1] != full_epochs:
        raise SystemExit(f"--calibrate: no run at the full budget of {full_epochs} epochs")
    full = values[full_epochs]
    seen = np.isfinite(full).any(axis=0)
    arrays = {e: values[e][:, seen] for e in budgets}
    n_seeds = full.shape[0]
    if n_seeds < 2:
        raise SystemExit("--calibrate: the study needs at least 2 seeds to measure the seed sd")
    level, spread, seed_sd, means = [], [], [], {}
    for e in budgets:
        x = arrays[e]
        m = np.nanmean(x, axis=0)
        within = np.nanvar(x, axis=0, ddof=1)
        sd = float(np.sqrt(np.nanmean(within)))
        observed = float(np.std(m, ddof=1))
        true_var = observed ** 2 - sd ** 2 / n_seeds
        means[e] = m
        level.append(float(m.mean()))
        seed_sd.append(sd)
        spread.append(float(math.sqrt(max(true_var, 0.25 * observed ** 2))))  # floor: a quarter of the variance
    rho, rho_raw, tau, noise = [], [], [], []
    deviations = np.stack([(arrays[e] - means[e]).ravel() for e in budgets])
    complete = np.isfinite(deviations).all(axis=0)
    matrix = tuple(tuple(float(v) for v in row) for row in np.corrcoef(deviations[:, complete]))
    obs_full = np.std(means[full_epochs], ddof=1)
    for i, e in enumerate(budgets[:-1]):
        raw = float(np.corrcoef(means[e], means[full_epochs])[0, 1])
        reliability = (spread[i] / np.std(means[e], ddof=1)) * (spread[-1] / obs_full)
        rho_raw.append(raw)
        rho.append(float(np.clip(raw / reliability, -0.99, 0.99)))
        tau.append(kendall_tau(arrays[e], arrays[full_epochs]))
        dev_e = (arrays[e] - means[e]).ravel()
        dev_f = (arrays[full_epochs] - means[full_epochs]).ravel()
        ok = np.isfinite(dev_e) & np.isfinite(dev_f)
        noise.append(float(np.corrcoef(dev_e[ok], dev_f[ok])[0, 1]))
    return Calibration(source, budgets, int(seen.sum()), n_seeds, tuple(level), tuple(spread), tuple(seed_sd),
                       tuple(rho), tuple(rho_raw), tuple(tau), tuple(noise), curves, noise_matrix=matrix)


def read_study(storage: str, study: str | None, *, prefixes: bool = False) -> Calibration:
    """:func:`calibrate` on a fidelity study: its runs by budget, and the within-run curves of its
    full-budget runs (how well epoch k of an 8-epoch run predicts its end, for comparison).

    ``prefixes``: every epoch of the full-budget runs is a budget, its value the run's best val
    mIoU up to that epoch, as a rung of that many epochs reports it. That is exact only under a
    constant learning rate, where a rung's run is the first epochs of the full run bit for bit
    (checked on :data:`MEASURED_ZOO`'s 40 rung runs), so it is refused for any other schedule."""
    import optuna

    from sweeper.sweep.fidelity import budget_values
    from sweeper.sweep.records import read_records
    from sweeper.sweep.storage import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = open_storage(storage, must_exist=True)
    names = [s.study_name for s in optuna.get_all_study_summaries(store)]
    name = study or next((n for n in names if n.endswith("-fidelity")), None)
    if name not in names:
        raise SystemExit(f"--study: no study {name!r} in {storage}; studies there: {', '.join(names)}")
    records = read_records(optuna.load_study(study_name=name, storage=store))
    runs = [r for r in records if r.is_run]
    keys = list(dict.fromkeys(r.unit.candidate for r in runs))
    seeds = tuple(sorted({r.unit.seed for r in runs}))
    rungs = tuple(sorted({r.unit.rung for r in runs if r.unit.rung is not None}))
    full_epochs = next(r.config["epochs"] for r in runs if r.unit.rung is None)
    constant = all((r.config or {}).get("scheduler") == "none" for r in runs)
    if prefixes:
        if not constant:
            raise SystemExit("--prefixes: the study's recipe has a learning-rate schedule, so the first epochs of a "
                             "full run are not a shorter run")
        from sweeper.sweep.fidelity import prefix_values

        raw = {**prefix_values(records, keys, seeds, full_epochs),
               full_epochs: budget_values(records, keys, seeds, (None,))[None]}
        values = {e: _nan_array(rows) for e, rows in raw.items()}
        source = f"{storage} study {name}, every epoch of its full-budget runs"
        return replace(calibrate(values, full_epochs, source), constant_lr=True, prefixes=True)
    raw = budget_values(records, keys, seeds, (*rungs, None))
    values = {(full_epochs if e is None else e): _nan_array(rows) for e, rows in raw.items()}
    # Within-run curves: epoch k's val mIoU of each full-budget run against the run's value.
    finals, by_epoch = [], {}
    for r in runs:
        if r.unit.rung is None and r.history:
            finals.append(r.value)
            for h in r.history:
                by_epoch.setdefault(h["epoch"] + 1, []).append(h["miou"])
    parts = []
    for k in sorted(by_epoch):
        if k in rungs and len(by_epoch[k]) == len(finals):
            parts.append(f"epoch {k} of a {full_epochs}-epoch run vs its value: r = "
                         f"{np.corrcoef(by_epoch[k], finals)[0, 1]:.2f} (mean mIoU {np.mean(by_epoch[k]):.3f})")
    return replace(calibrate(values, full_epochs, f"{storage} study {name}", curves="; ".join(parts)),
                   constant_lr=constant)


def _nan_array(rows) -> np.ndarray:
    """Rows of values with None for a missing run, as a float array with NaN there."""
    return np.array([[np.nan if v is None else v for v in row] for row in rows])


# --------------------------------------------------------------------------- the simulation


def simulate_catalogue(cal: Calibration, k: int, rng: np.random.Generator):
    """One catalogue: true full-budget means (k,), and runs[budget] (k, MAX_SEEDS) at every budget
    the calibration measured (its cheap rungs and its full budget)."""
    *rungs, full = cal.budgets
    z_full = rng.normal(size=k)
    true = {full: cal.level[-1] + cal.spread[-1] * z_full}
    z_next, rho_next = z_full, 1.0
    markov = is_markov(cal)
    for i in reversed(range(len(rungs))):
        rho = cal.rho[i] / rho_next if markov else cal.rho[i]
        base = z_next if markov else z_full
        z = rho * base + math.sqrt(max(1 - rho * rho, 0.0)) * rng.normal(size=k)
        true[rungs[i]] = cal.level[i] + cal.spread[i] * z
        if markov:
            z_next, rho_next = z, cal.rho[i]
    # A seed's deviation at a rung correlates with its deviation at the full budget as measured
    # (noise_corr): the two runs share a seed, so the same initial weights and data order.
    noise_full = rng.normal(size=(k, MAX_SEEDS))
    runs = {full: true[full][:, None] + cal.seed_sd[-1] * noise_full}
    if cal.noise_matrix is not None:  # every pair of budgets as measured, the full budget's draw kept
        rest = conditional_noise(np.array(cal.noise_matrix), noise_full, rng)
        for i, e in enumerate(rungs):
            runs[e] = true[e][:, None] + cal.seed_sd[i] * rest[..., i]
        return true[full], runs
    for i, e in enumerate(rungs):
        c = float(np.clip(cal.noise_corr[i], -0.99, 0.99))
        noise = c * noise_full + math.sqrt(1 - c * c) * rng.normal(size=(k, MAX_SEEDS))
        runs[e] = true[e][:, None] + cal.seed_sd[i] * noise
    return true[full], runs


def conditional_noise(matrix: np.ndarray, noise_full: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Standard normal noise at the cheap budgets, ``(*noise_full.shape, budgets - 1)``, whose joint
    correlation with ``noise_full`` (the full budget's, last row of ``matrix``) is ``matrix``, made
    positive definite first (a correlation measured on 20 runs need not be)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    fixed = vectors @ np.diag(np.clip(values, 1e-3, None)) @ vectors.T
    d = np.sqrt(np.diag(fixed))
    fixed = fixed / np.outer(d, d)
    cheap, cross = fixed[:-1, :-1], fixed[:-1, -1]
    chol = np.linalg.cholesky(cheap - np.outer(cross, cross))
    return noise_full[..., None] * cross + rng.normal(size=(*noise_full.shape, len(cross))) @ chol.T


def is_markov(cal: Calibration) -> bool:
    """Whether the rungs' correlations with the full budget grow with the epochs, as a Markov
    chain down from the full budget needs."""
    return all(abs(a) <= abs(b) for a, b in zip(cal.rho, (*cal.rho[1:], 1.0)))


def sim_space(k: int, rungs: tuple[int, ...], keep: float, full: int):
    """The space ScreenThenRace reads: k candidates screened, 5 seeds, racing, the ROPE, the rungs.
    Its recipe is a stand-in with only the epochs (the stub never builds a TrainConfig)."""
    from sweeper.sweep.rungs import Rungs
    from sweeper.sweep.space import ArchSpace, PrunerSpec, SearchSpace

    return SearchSpace(name="sim", source="sim", base=SimpleNamespace(epochs=full), architectures=ArchSpace(),
                       seeds=tuple(range(MAX_SEEDS)), racing=True, pruner=PrunerSpec("none"), trials=k, rope=ROPE,
                       screening=Rungs(tuple(rungs), keep) if rungs else None)


def follow(plan, value_of) -> list:
    """Run ``plan`` to its end with a stub runner (as tests/sweep/stub.py does), one worker.

    While the plan climbs the rungs, the units of a level go in at once, in the order it would
    hand them out one by one (``plan.ladder``); promotion waits for the whole level anyway, so the
    decisions are the same, for far fewer calls. Racing asks the plan before every unit."""
    from optuna.trial import TrialState

    from sweeper.sweep.plans import ScreenThenRace
    from sweeper.sweep.records import RUNG, SCREEN, TrialRecord, Unit

    records: list = []
    for _ in range(100_000):
        step = plan.next_unit(records)
        if step is None:
            return records
        assert isinstance(step, Unit), f"a plan over finished records answered {step}"
        batch = [step]
        if step.phase in (RUNG, SCREEN) and isinstance(plan, ScreenThenRace):
            held = {r.unit.key for r in records}
            batch = [u for u in plan.ladder(records)[1] if u.key not in held]
            assert batch[0] == step
        for unit in batch:
            records.append(TrialRecord(number=len(records), state=TrialState.COMPLETE, value=value_of(unit),
                                       unit=unit))
    raise AssertionError("the plan did not finish")


def run_sweeper(runs: dict, k: int, rungs: tuple[int, ...], keep: float, full: int, seed: int
                ) -> tuple[int, int, int, int, list[int]]:
    """``(★ column, epochs trained from scratch, epochs trained going on, epochs of racing's
    repeats, the columns that reached the full budget)`` of sweeper's plan on one catalogue. The
    second figure is what the plan costs when every rung trains from scratch (under a
    learning-rate schedule); the third what it costs when each rung goes on from the one before's
    saved state, as sweeper does under a constant learning rate, where it gives the same runs bit
    for bit."""
    from sweeper.sweep.plans import ScreenThenRace
    from sweeper.sweep.ranking import rank_records
    from sweeper.sweep.records import REPEAT, CandidateKey

    keys = [CandidateKey.of("sim", f"c{i:04d}") for i in range(k)]
    column = {key: i for i, key in enumerate(keys)}
    plan = ScreenThenRace(sim_space(k, rungs, keep, full), keys, rng=random.Random(seed))
    records = follow(plan, lambda u: float(runs[full if u.rung is None else u.rung][column[u.candidate], u.seed]))
    best = rank_records(records, rope=ROPE).best_key
    epochs = sum(full if r.unit.rung is None else r.unit.rung for r in records)
    ladder = (0, *rungs, full)

    def added(r) -> int:  # the epochs a unit adds to its candidate's run when rungs continue
        budget = full if r.unit.rung is None else r.unit.rung
        return full if r.unit.phase == REPEAT else budget - ladder[ladder.index(budget) - 1]

    racing = sum(full for r in records if r.unit.phase == REPEAT)
    finalists = sorted({column[r.unit.candidate] for r in records if r.unit.rung is None})
    return int(best.removeprefix("sim/c")), epochs, sum(added(r) for r in records), racing, finalists


@dataclass
class Tally:
    hits: int = 0
    epochs: int = 0
    studies: int = 0
    continued: int = 0
    racing: int = 0
    #: Where sweeper's misses come from: studies where a candidate within the ROPE of the best
    #: reached the full budget (the rungs kept one), and where the best mean of 5 seeds of every
    #: finalist would have been within the ROPE (what uniform 5 on the finalists would score:
    #: racing's repeats stop earlier than that).
    reached: int = 0
    finalists_uniform: int = 0

    def add(self, hit: bool, epochs: int, continued: int | None = None, racing: int = 0, *,
            reached: bool = False, finalists_uniform: bool = False) -> None:
        self.hits += bool(hit)
        self.epochs += epochs
        self.continued += epochs if continued is None else continued
        self.racing += racing
        self.reached += bool(reached)
        self.finalists_uniform += bool(finalists_uniform)
        self.studies += 1


def spent(tally: Tally, cal: Calibration) -> int:
    """The epochs sweeper trains: each rung going on from the one before under a constant learning
    rate, from scratch otherwise."""
    return tally.continued if cal.constant_lr else tally.epochs


def run_setting(cal: Calibration, k: int, studies: int, settings: list[tuple[tuple[int, ...], float]], seed: int,
                *, progress: str = ""):
    """Every strategy on the same ``studies`` catalogues; sweeper once per ``(rungs, keep)`` setting.
    Returns the tallies of once and uniform 5, sweeper's per setting, and per setting the paired
    differences of sweeper's hit and uniform 5's, study by study. ``progress``: a bar with this
    label on stderr (the search runs for many minutes)."""
    from rich.progress import track

    full = cal.budgets[-1]
    rng = np.random.default_rng(seed)
    once, uniform = Tally(), Tally()
    ours = [Tally() for _ in settings]
    paired = [[] for _ in settings]
    steps = range(studies)
    if progress:
        steps = track(steps, description=progress, console=Console(stderr=True), transient=True)
    for s in steps:
        true, runs = simulate_catalogue(cal, k, rng)
        best = true.max()
        a = int(np.argmax(runs[full][:, 0]))
        b = int(np.argmax(runs[full].mean(axis=1)))
        hit_b = best - true[b] <= ROPE
        once.add(best - true[a] <= ROPE, k * full)
        uniform.add(hit_b, MAX_SEEDS * k * full)
        for j, (rungs, keep) in enumerate(settings):
            c, epochs, continued, racing, finalists = run_sweeper(runs, k, rungs, keep, full, seed * 100_003 + s)
            hit_c = best - true[c] <= ROPE
            f = np.array(finalists)
            f_best = f[int(np.argmax(runs[full][f].mean(axis=1)))]
            ours[j].add(hit_c, epochs, continued, racing, reached=bool((best - true[f] <= ROPE).any()),
                        finalists_uniform=best - true[f_best] <= ROPE)
            paired[j].append(int(hit_c) - int(hit_b))
    return once, uniform, ours, [np.array(p) for p in paired]


def diff_interval(d: np.ndarray) -> str:
    """The paired difference of two rates on the same studies, with a normal 95% interval."""
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size) if d.size > 1 else math.nan
    return f"{100 * d.mean():+.1f} [{100 * (d.mean() - half):+.1f}, {100 * (d.mean() + half):+.1f}]"


def print_calibration(cal: Calibration, k: int) -> None:
    kind = "Figures (some overridden)" if cal.source.startswith("WHAT-IF") else "Real figures"
    how = ("each cheap budget the first epochs of a full run" if cal.prefixes
           else "every run trained from scratch at its budget")
    table = Table(title=f"{kind}: {cal.source} ({cal.candidates} candidates x {cal.seeds} seeds; {how})",
                  title_justify="left")
    for col in ("budget (epochs)", "mean mIoU", "true spread (sd)", "seed sd", "rho true vs full", "rho observed",
                "Kendall tau (runs)", "seed-noise corr with full"):
        table.add_column(col, justify="right")
    for i, e in enumerate(cal.budgets):
        cheap = i < len(cal.budgets) - 1
        table.add_row(str(e), f"{cal.level[i]:.3f}", f"{cal.spread[i]:.4f}", f"{cal.seed_sd[i]:.4f}",
                      f"{cal.rho[i]:.2f}" if cheap else "1", f"{cal.rho_raw[i]:.2f}" if cheap else "",
                      f"{cal.tau[i]:+.2f}" if cheap else "", f"{cal.noise_corr[i]:+.2f}" if cheap else "")
    console.print(table)
    if cal.curves:
        console.print(f"Within-run curves (real, for comparison; rungs are separate runs): {cal.curves}",
                      highlight=False)
    chain = "a Markov chain down from" if is_markov(cal) else "independent given"
    console.print(f"Simulated: {k} candidates per catalogue, true full-budget means normal (mean {cal.level[-1]:.3f}, "
                  f"sd {cal.spread[-1]:.4f}); true rung means {chain} the full budget with the rho above (true "
                  "spread and mean as measured); runs = true mean + normal noise of the seed sd above, one seed's "
                  + ("noise correlated between every two budgets as measured (noise_matrix); " if cal.noise_matrix
                     else "noise at a rung correlated with its noise at the full budget as measured; ")
                  + f"ROPE {ROPE}, up to {MAX_SEEDS} seeds.\n", highlight=False)


def what_if(cal: Calibration, *, rho: str | None, seed_sd: str | None, error) -> Calibration:
    """The calibration with ``--rho`` / ``--seed-sd`` put in place of the measured figures, its
    source saying so (the rho_raw, tau and noise columns stay the measured ones)."""
    changes, notes = {}, []
    for name, text, size in (("rho", rho, len(cal.budgets) - 1), ("seed_sd", seed_sd, len(cal.budgets))):
        if text is None:
            continue
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            error(f"--{name.replace('_', '-')}: expected {size} numbers separated by commas, got {text!r}")
        if len(values) != size or (name == "rho" and any(abs(v) >= 1 for v in values)) or \
                (name == "seed_sd" and any(v < 0 for v in values)):
            error(f"--{name.replace('_', '-')}: expected {size} value(s) for budgets {cal.budgets[:size]} "
                  f"({'each in (-1, 1)' if name == 'rho' else 'each >= 0'}), got {text!r}")
        changes[name] = values
        notes.append(f"{name} set to {', '.join(map(str, values))}")
    if not changes:
        return cal
    return replace(cal, source=f"WHAT-IF ({'; '.join(notes)}) on {cal.source}", **changes)


#: The what-if grid: the cheap rungs' true correlations with the full budget, weakest first.
GRID = "0.3,0.6;0.5,0.75;0.7,0.85;0.8,0.9;0.9,0.95"


def typical_tau(cal: Calibration, rng: np.random.Generator, *, candidates: int = 10, seeds: int = 2,
                draws: int = 200) -> list[float]:
    """The Kendall tau per cheap rung that ``sweeper fidelity --candidates 10 --seeds 2`` would
    show on average under this calibration (single runs, as the command computes it): the bridge
    from the correlations of true means, which a user never sees, to the command's output."""
    from sweeper.stats.fidelity import kendall_tau

    *rungs, full = cal.budgets
    taus = np.zeros((draws, len(rungs)))
    for d in range(draws):
        _, runs = simulate_catalogue(cal, candidates, rng)
        for i, e in enumerate(rungs):
            taus[d, i] = kendall_tau(runs[e][:, :seeds].T, runs[full][:, :seeds].T)
    return [float(t) for t in np.nanmean(taus, axis=0)]


def run_grid(cal: Calibration, k: int, studies: int, grid: str, keeps: str, seed: int) -> None:
    """What-if: sweeper at zoo-50m's ladder over a grid of rung correlations, every other figure
    as measured. The catalogues and runs at the full budget are the same in every row (the same
    seed), so once and uniform 5 are one figure for the whole grid."""
    rungs = cal.budgets[:-1]
    settings = [(rungs, float(keep)) for keep in keeps.split(",")]
    table = Table(title=f"WHAT-IF: sweeper's rungs {'/'.join(map(str, cal.budgets))} over rung correlations (true "
                  f"means vs the full budget), other figures from {cal.source}; {k} candidates, {studies} studies. "
                  "Each cell: P(★ within ROPE), % of once's compute, goal", title_justify="left")
    table.add_column("rho (rungs vs full)", justify="right")
    table.add_column("tau a 10 x 2 fidelity check shows", justify="right")
    for _, keep in settings:
        table.add_column(f"keep {keep:g}", justify="right")
    reference = None
    for pair in grid.split(";"):
        rho = tuple(float(v) for v in pair.split(","))
        if len(rho) != len(rungs):
            raise SystemExit(f"--grid: {pair!r} needs {len(rungs)} correlation(s), one per cheap rung {rungs}")
        what = replace(cal, rho=rho, source=f"WHAT-IF rho {pair}")
        once, uniform, ours, _ = run_setting(what, k, studies, settings, seed)
        if reference is None:
            reference = (once, uniform)
        tau = typical_tau(what, np.random.default_rng(seed + 1))
        cells = []
        for tally in ours:
            share = spent(tally, cal) / once.epochs
            met = tally.hits / studies >= uniform.hits / studies - GOAL_POINTS and share <= GOAL_COST
            cells.append(f"{100 * tally.hits / studies:.1f}%, {100 * share:.0f}%, {'met' if met else 'not met'}")
        table.add_row(pair.replace(",", " / "), " / ".join(f"{t:+.2f}" for t in tau), *cells)
    console.print(table)
    once, uniform = reference
    console.print(f"Reference on the same catalogues: once {rate(once.hits, studies)} at 100%; uniform 5 "
                  f"{rate(uniform.hits, studies)} at 500%. Goal: P >= uniform 5's - {100 * GOAL_POINTS:.0f} points at "
                  f"<= {100 * GOAL_COST:.0f}% of once's compute.", highlight=False)


def pareto(rows: list[tuple]) -> list[tuple]:
    """The rows ``(setting, P, cost, ...)`` that no other row beats on both P (higher) and cost
    (lower), cheapest first."""
    front, best = [], -1.0
    for row in sorted(rows, key=lambda r: (r[2], -r[1])):
        if row[1] > best:
            front.append(row)
            best = row[1]
    return front


def run_search(cal: Calibration, k: int, studies: int, keeps: str, max_rungs: int, seed: int) -> None:
    """Every ladder of up to ``max_rungs`` cheap rungs among the measured budgets, with every keep,
    on ``studies`` catalogues (seed ``seed``); the Pareto front of P against compute (continued
    rungs under a constant learning rate, else from scratch). Picking the best of many settings
    on the same catalogues flatters it, so the front is run again on fresh catalogues (seed + 1)
    and both figures are printed; the goal is judged on the fresh ones."""
    from itertools import combinations

    cheap = cal.budgets[:-1]
    ladders = [c for n in range(1, max_rungs + 1) for c in combinations(cheap, n)]
    settings = [(ladder, float(keep)) for ladder in ladders for keep in keeps.split(",")]
    how = "with rungs continued" if cal.constant_lr else "from scratch"
    console.print(f"Search: {len(settings)} settings (ladders of up to {max_rungs} of the rungs {cheap}, keeps "
                  f"{keeps}) on {studies} catalogues; compute {how}.", highlight=False)
    once, uniform, ours, _ = run_setting(cal, k, studies, settings, seed, progress="search")
    rows = [(setting, t.hits / studies, spent(t, cal) / once.epochs) for setting, t in zip(settings, ours)]
    front = pareto(rows)
    again_once, again_uniform, again, paired = run_setting(cal, k, studies, [r[0] for r in front], seed + 1,
                                                           progress="Pareto front, fresh catalogues")
    target = again_uniform.hits / studies - GOAL_POINTS
    table = Table(title=f"Pareto front of P against compute, searched on seed {seed}, run again on fresh catalogues "
                  f"(seed {seed + 1}); {k} candidates, {studies} studies each", title_justify="left")
    for col in ("rungs / keep", f"P, search (seed {seed})", f"P, fresh (seed {seed + 1})", "% of once (fresh)",
                "P - uniform 5 (fresh, paired)", "goal (fresh)"):
        table.add_column(col, justify="right")
    full = cal.budgets[-1]
    for (setting, p_search, _), tally, d in zip(front, again, paired):
        share = spent(tally, cal) / again_once.epochs
        failed = [what for what, ok in (("P", tally.hits / studies >= target), ("compute", share <= GOAL_COST))
                  if not ok]
        table.add_row(f"{'/'.join(map(str, (*setting[0], full)))} / {setting[1]:g}", f"{100 * p_search:.1f}%",
                      rate(tally.hits, studies), f"{100 * share:.0f}%", diff_interval(d),
                      f"NOT MET ({', '.join(failed)})" if failed else "met")
    console.print(table)
    console.print(f"Fresh catalogues: once {rate(again_once.hits, studies)} at 100%; uniform 5 "
                  f"{rate(again_uniform.hits, studies)} at 500%; the goal's P is >= {100 * target:.1f}% at <= "
                  f"{100 * GOAL_COST:.0f}%.", highlight=False)


def parse_settings(ladders: str, keeps: str, cheap: tuple[int, ...]) -> list[tuple[tuple[int, ...], float]]:
    """``--ladders "1,3;1"`` x ``--keeps 0.25,0.33``: every ladder with every keep; a ladder's rungs
    must be budgets the calibration measured."""
    out = []
    for ladder in ladders.split(";"):
        rungs = tuple(int(e) for e in ladder.split(",") if e.strip())
        missing = [e for e in rungs if e not in cheap]
        if missing or list(rungs) != sorted(set(rungs)):
            raise SystemExit(f"--ladders: {ladder!r}: rungs must be increasing budgets among the measured {cheap}")
        out += [(rungs, float(k)) for k in keeps.split(",")]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=None, help="simulated studies per setting (default 200, "
                        "--quick 60)")
    parser.add_argument("--quick", action="store_true", help="60 studies per setting")
    parser.add_argument("--candidates", type=int, default=100, help="candidates per simulated catalogue")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    parser.add_argument("--calibration", choices=tuple(CALIBRATIONS), default=next(iter(CALIBRATIONS)),
                        help="which measured figures: zoo-50m's recipe on 960 demo images (MEASURED_ZOO) or the "
                        "demo recipe on the demo data (MEASURED)")
    parser.add_argument("--calibrate", metavar="STORAGE", help="recompute the real figures from a fidelity study "
                        "in this storage instead")
    parser.add_argument("--study", help="the fidelity study's name (default: the first *-fidelity study)")
    parser.add_argument("--keeps", default="0.25,0.33,0.5", help="keep fractions to compare (zoo-50m: 0.5)")
    parser.add_argument("--ladders", default="1,3", help="cheap rungs to compare, ';' between ladders, e.g. "
                        "'1,3;1;3' (zoo-50m: 1,3); each among the measured budgets")
    parser.add_argument("--rho", help="what-if: the cheap rungs' true correlations with the full budget instead of "
                        "the measured ones, e.g. 0.5,0.8 (marked as such in the output)")
    parser.add_argument("--seed-sd", help="what-if: the seed sd of every budget instead of the measured ones, e.g. "
                        "0.005,0.008,0.012")
    parser.add_argument("--grid", nargs="?", const=GRID, default=None, help="what-if: sweeper over a grid of rung "
                        f"correlations, ';' between rows (default grid {GRID}); with --keeps")
    parser.add_argument("--prefixes", action="store_true", help="with --calibrate: every epoch of the full-budget "
                        "runs is a budget (constant learning rate only)")
    parser.add_argument("--search", nargs="?", type=int, const=3, default=None, metavar="MAX_RUNGS",
                        help="every ladder of up to MAX_RUNGS (default 3) of the measured cheap rungs with every "
                        "--keeps; prints the Pareto front of P against compute, re-run on fresh catalogues")
    args = parser.parse_args(argv)
    studies = args.studies or (60 if args.quick else 200)
    if studies < 2 or args.candidates < 3:
        parser.error("--studies must be >= 2 and --candidates >= 3")
    if args.prefixes and not args.calibrate:
        parser.error("--prefixes needs --calibrate (the built-in per-epoch figures: --calibration zoo-epochs)")
    cal = (read_study(args.calibrate, args.study, prefixes=args.prefixes) if args.calibrate
           else CALIBRATIONS[args.calibration])
    cal = what_if(cal, rho=args.rho, seed_sd=args.seed_sd, error=parser.error)
    settings = parse_settings(args.ladders, args.keeps, cal.budgets[:-1])
    full = cal.budgets[-1]
    start = time.perf_counter()
    print_calibration(cal, args.candidates)
    if args.search is not None:
        run_search(cal, args.candidates, studies, args.keeps, args.search, args.seed)
        console.print(f"total {time.perf_counter() - start:.0f} s, seed {args.seed}", highlight=False)
        return 0
    if args.grid:
        run_grid(cal, args.candidates, studies, args.grid, args.keeps, args.seed)
        console.print(f"total {time.perf_counter() - start:.0f} s, seed {args.seed}", highlight=False)
        return 0
    once, uniform, ours, paired = run_setting(cal, args.candidates, studies, settings, args.seed)
    table = Table(title=f"{args.candidates} candidates, {studies} simulated studies, ROPE {ROPE}; the same catalogues "
                  "and runs in every row. Goal: sweeper's P >= uniform 5's - 2 points, for <= 35% of once's compute",
                  title_justify="left")
    columns = ["strategy", "rungs / keep", "P(★ within ROPE of the best)", "compute (epochs/candidate)",
               "% of once", "of which racing", "P - uniform 5 (paired)", "kept one in ROPE",
               "5 seeds on finalists", "goal"]
    if cal.constant_lr:  # sweeper goes on from each rung: what it spends; from scratch, for comparison
        columns[4] = "% of once (each rung going on)"
        columns.insert(6, "% of once, rungs from scratch")
    for col in columns:
        table.add_column(col, justify="left" if col == "strategy" else "right")
    blank = [""] * (len(columns) - 5)  # the baselines fill the first five columns only
    per = args.candidates * studies
    table.add_row("once (every candidate, 1 seed)", "-", rate(once.hits, studies), f"{once.epochs / per:.2f}", "100%",
                  *blank)
    table.add_row("uniform 5 seeds", "-", rate(uniform.hits, studies), f"{uniform.epochs / per:.2f}",
                  f"{100 * uniform.epochs / once.epochs:.0f}%", *blank)
    met = []
    for (rungs, keep), tally, d in zip(settings, ours, paired):
        share = spent(tally, cal) / once.epochs
        ok_p = tally.hits / studies >= uniform.hits / studies - GOAL_POINTS
        ok_cost = share <= GOAL_COST
        failed = [what for what, ok in (("P", ok_p), ("compute", ok_cost)) if not ok]
        label = f"{'/'.join(map(str, (*rungs, full)))} / {keep:g}"
        if rungs == ZOO_RUNGS and keep == ZOO_KEEP and full == ZOO_FULL:
            label += " (zoo-50m)"
        scratch = [f"{100 * tally.epochs / once.epochs:.0f}%"] if cal.constant_lr else []
        table.add_row("sweeper: rungs + racing", label, rate(tally.hits, studies), f"{spent(tally, cal) / per:.2f}",
                      f"{100 * share:.0f}%", f"{100 * tally.racing / once.epochs:.0f}%", *scratch, diff_interval(d),
                      f"{100 * tally.reached / studies:.1f}%", f"{100 * tally.finalists_uniform / studies:.1f}%",
                      f"NOT MET ({', '.join(failed)})" if failed else "met")
        if not failed:
            met.append(label)
    console.print(table)
    console.print("Goal met for: " + ", ".join(met) if met else "Goal met for none of the settings tried.",
                  highlight=False)
    console.print(f"total {time.perf_counter() - start:.0f} s, seed {args.seed}", highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
