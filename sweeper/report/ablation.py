"""An ablation's arms: the baseline on top, then each change by its effect, with its verdict.

The effect is the mean paired difference to the baseline over the seeds the arm shares with it
(mIoU; positive: the change helps), with its simultaneous interval over all the arms.
"""

from __future__ import annotations

import json
import math
from typing import Any

SYMBOLS = {"better": "▲", "worse": "▼", "equivalent": "≈", "undecided": "?"}

LEGEND = (
    "▲ better: the effect's interval lies above +ROPE: the change helps by more than the ROPE.",
    "▼ worse: the effect's interval lies below -ROPE: the change hurts by more than the ROPE.",
    "≈ equivalent: the interval lies inside ±ROPE: the change makes no practical difference.",
    "? undecided: neither yet; (~N seeds) is how many seeds per arm would likely decide it.",
)


def _num(x: float, sign: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "—"
    return f"{x:+.4f}" if sign else f"{x:.4f}"


def verdict_text(arm) -> str:
    text = f"{SYMBOLS.get(arm.verdict, '')} {arm.verdict}"
    if arm.verdict == "undecided" and math.isfinite(arm.seeds_to_decide):
        text += f" (~{int(math.ceil(arm.seeds_to_decide))} seeds)"
    return text


def rows(table) -> list[list[str]]:
    out = [["baseline", table.baseline, _num(table.baseline_mean), "—", "—", str(table.baseline_n), "control"]]
    for row in table.arms:
        arm = row.effect
        interval = f"[{_num(arm.low, True)}, {_num(arm.high, True)}]"
        out.append([row.name, row.key, _num(row.mean), _num(arm.effect, True), interval, str(arm.n),
                    verdict_text(arm)])
    return out


HEADER = ["change", "arm", "mean mIoU", "effect", "interval", "seeds", "verdict"]


def method_line(table) -> str:
    r = table.result
    return (f"Effect: mean paired difference to the baseline over shared seeds; {r.procedure}; ROPE ±{table.rope:.3f} "
            "mIoU.")


def render_table(table, console=None) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if console is None:
        from sweeper.console import out as console
    t = Table(title="Ablation: each change against the baseline", title_justify="left", box=box.SIMPLE_HEAD,
              collapse_padding=True, pad_edge=False, show_edge=False)
    for name in HEADER:
        t.add_column(name, justify="right" if name in ("mean mIoU", "effect", "seeds") else "left",
                     overflow="ellipsis" if name == "arm" else "fold")
    for i, cells in enumerate(rows(table)):
        t.add_row(*(escape(c) for c in cells), style="bold" if i == 0 else None)
    console.print(t)
    console.print(method_line(table), markup=False, highlight=False)
    for line in LEGEND:
        console.print(line, style="dim", markup=False)


def to_markdown(table) -> str:
    """Ready to paste into a team's notes: the change, effect ± interval, verdict and seeds, then
    the baseline's full config once."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for i, cells in enumerate(rows(table)):
        cells = [c.replace("|", "\\|") for c in cells]
        lines.append("| " + " | ".join(f"**{c}**" if i == 0 else c for c in cells) + " |")
    lines += ["", method_line(table), ""]
    lines += [f"- {line}" for line in LEGEND]
    lines += ["", "Baseline config:", "", "```json", json.dumps(table.baseline_config, indent=1, sort_keys=True,
                                                               default=str), "```"]
    return "\n".join(lines) + "\n"


def to_dict(table) -> dict[str, Any]:
    def clean(x):
        return x if x is None or not isinstance(x, float) or math.isfinite(x) else None

    return {
        "baseline": {"key": table.baseline, "mean_miou": clean(table.baseline_mean), "n": table.baseline_n,
                     "config": table.baseline_config},
        "rope": table.rope,
        "procedure": table.result.procedure,
        "arms": [{"change": row.name, "key": row.key, "mean_miou": clean(row.mean), "effect": clean(row.effect.effect),
                  "low": clean(row.effect.low), "high": clean(row.effect.high), "verdict": row.effect.verdict,
                  "n": row.effect.n, "p_adjusted": clean(row.effect.p_adjusted),
                  "seeds_to_decide": (None if not math.isfinite(row.effect.seeds_to_decide)
                                      else row.effect.seeds_to_decide)}
                 for row in table.arms],
    }


def to_json(table) -> str:
    return json.dumps(to_dict(table), indent=2, ensure_ascii=False, allow_nan=False, default=str)
