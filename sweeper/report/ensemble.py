"""The ensemble of ``sweeper ensemble`` as a table: its members, then the ensemble and its gain."""

from __future__ import annotations


def render_table(result):
    """Members, then the ensemble and its gain over the best member (a rich Table)."""
    from rich.table import Table

    where = f"hold-out images of {result.holdout}" if result.holdout else "validation images"
    table = Table(title=f"ensemble of {len(result.members)} run(s) on {result.images} {where}", header_style="bold")
    here = "mIoU hold-out" if result.holdout else "mIoU here"
    for name in ("", "trial", "candidate", "seed", "fold", "mIoU recorded", here):
        table.add_column(name, justify="right" if name in ("trial", "seed", "fold") or "mIoU" in name else "left")
    for m in result.members:
        table.add_row("member", str(m.trial), m.candidate, str(m.seed), str(m.fold), f"{m.recorded_miou:.4f}",
                      f"{m.miou:.4f}")
    table.add_row("[bold]ensemble[/]", "", "mean of softmax probabilities", "", "", "", f"[bold]{result.miou:.4f}[/]")
    table.add_row("gain", "", f"vs best member ({result.best_member.candidate})", "", "", "", f"{result.gain:+.4f}")
    return table
