"""What the commands show while they work and when they end: the live view of a sweep, progress
bars, and the ranked table in the chosen format. Diagnostics go to stderr, results to stdout."""

from __future__ import annotations

from sweeper.cli._app import OutputFormat


def print_ranking(ranking, fmt: OutputFormat) -> None:
    from sweeper import console
    from sweeper import report as report_mod

    if ranking is None:
        console.err.print("no finished run to rank yet")
        return
    if fmt is OutputFormat.table:
        report_mod.render_table(ranking, console.out)
    else:
        writer = {"csv": report_mod.to_csv, "json": report_mod.to_json, "markdown": report_mod.to_markdown}[fmt.value]
        console.out.file.write(writer(ranking))


class TuneView:
    """Live view of a sweep on a terminal; one log line per finished trial otherwise."""

    def __init__(self, space):
        from sweeper import console

        self.space = space
        self.live = None
        self.interactive = console.err.is_terminal
        self.done = {"complete": 0, "pruned": 0, "failed": 0}
        self.current = "starting"
        self.epoch = ""
        self.best = None

    def __enter__(self):
        if self.interactive:
            from rich.live import Live

            from sweeper import console

            self.live = Live(self._render(), console=console.err, transient=True, refresh_per_second=4)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False

    def _render(self):
        from rich.table import Table

        table = Table.grid(padding=(0, 2))
        table.add_row("[bold]sweeper tune[/]", f"space {self.space.name}")
        table.add_row("trials",
                      f"{self.done['complete']} complete, {self.done['pruned']} pruned, {self.done['failed']} failed")
        table.add_row("running", f"{self.current} {self.epoch}")
        if self.best is not None:
            table.add_row("best so far", f"{self.best[0]}  mIoU {self.best[1]:.4f}")
        return table

    def event(self, kind: str, info: dict) -> None:
        from sweeper import console

        unit = info.get("unit")
        if kind == "start":
            self.current = f"#{info['trial']} {unit.candidate} seed {unit.seed} fold {unit.fold} ({unit.phase})"
            self.epoch = f"epoch 0/{info['epochs']}"
        elif kind == "epoch":
            m = info["metrics"]
            self.epoch = f"epoch {m.epoch + 1}: mIoU {m.miou:.4f}"
        elif kind == "end":
            state = info["state"]
            key = "complete" if state == "complete" else "pruned" if state == "pruned" else "failed"
            self.done[key] += 1
            value = info.get("value")
            if state == "complete" and value is not None and (self.best is None or value > self.best[1]):
                self.best = (unit.candidate, value)
            if not self.interactive:
                shown = "-" if value is None else f"{value:.4f}"
                extra = f": {info['reason']}" if info.get("reason") else ""
                console.err.print(f"trial {info['trial']} {unit.candidate} seed {unit.seed} fold {unit.fold} "
                                  f"[{unit.phase}] {state} mIoU {shown}{extra}", highlight=False, markup=False)
        elif kind == "wait":
            grace = info.get("grace_s")
            numbers = ", ".join(str(n) for n in info.get("trials", ()))
            waited = f"waiting for {info['running']} running trial(s) of other workers" + (
                f" (trial {numbers})" if numbers else "")
            if grace is not None:
                how_long = (f"one whose worker is dead or paused is failed and retried here {grace} s after its last "
                            "heartbeat (or its start, if it sent none)")
            else:
                how_long = ("a journal file has no heartbeat: a dead process of this machine is seen at once, one of "
                            "another machine is not")
            self.current, self.epoch = f"{waited}; {how_long}", ""
            if not self.interactive and getattr(self, "_waited_for", None) != numbers:
                self._waited_for = numbers  # one line per set of trials waited for, not one per poll
                console.err.print(self.current, highlight=False, markup=False, soft_wrap=True)
        if self.live is not None:
            self.live.update(self._render())


def print_invalid(invalid) -> None:
    from sweeper import console
    from sweeper.report.zoo import render_invalid

    console.err.print(render_invalid(invalid))


class Progress:
    """A transient rich progress bar on stderr, silent when stderr is not a terminal."""

    def __init__(self, label: str):
        self.label = label

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from sweeper import console

        self._bar = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console.err, transient=True, disable=not console.err.is_terminal,
        )
        self._bar.__enter__()
        self._task = self._bar.add_task(self.label, total=None)
        return self.update

    def update(self, done: int, total: int) -> None:
        self._bar.update(self._task, completed=done, total=total)

    def __exit__(self, *exc):
        return self._bar.__exit__(*exc)
