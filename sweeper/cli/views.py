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
    """What a sweep shows while it runs.

    On a terminal: a live panel with the phase's done/total, the running unit with an epoch bar
    and a step bar, the elapsed time, an ETA from the measured run times (screening has a known
    size; racing's depends on the verdicts), and the best candidate by mean over its runs; every
    finished trial also prints one line that stays in the scrollback. Without a terminal (a log,
    a pipe): one unwrapped line per epoch and per finished trial.
    """

    def __init__(self, space):
        import time

        from sweeper import console

        self.space = space
        self.live = None
        self.interactive = console.err.is_terminal
        self.started = time.monotonic()
        self.done = {"complete": 0, "pruned": 0, "failed": 0}
        self.durations: list[float] = []
        self.runs: dict[str, list[float]] = {}
        self.phase = None  # (name, done, total)
        self.current = "starting"
        self.unit = None
        self.epochs = (0, 0)
        self.steps = (0, 0)
        self.last_miou = None
        self._drawn = 0.0

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

    # -- what is shown
    def best_by_mean(self):
        """``(candidate, mean mIoU, runs)`` of the best mean so far, or None."""
        if not self.runs:
            return None
        key = max(self.runs, key=lambda k: sum(self.runs[k]) / len(self.runs[k]))
        values = self.runs[key]
        return key, sum(values) / len(values), len(values)

    def eta_s(self) -> float | None:
        """Seconds left in the phase: the mean run time so far times the units left (None when the
        phase's size is not known ahead, or nothing has finished yet)."""
        if self.phase is None or self.phase[2] is None or not self.durations:
            return None
        left = max(self.phase[2] - self.phase[1] - 1, 0)  # the running unit is counted by its bar
        return left * sum(self.durations) / len(self.durations)

    def _render(self):
        import time

        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        elapsed = time.monotonic() - self.started
        table = Table.grid(padding=(0, 2))
        head = f"space {self.space.name} · elapsed {_clock(elapsed)}"
        eta = self.eta_s()
        if eta is not None:
            head += f" · ETA {_clock(eta)} for {self.phase[0]}"
        table.add_row(Text("sweeper tune", style="bold"), Text(head))
        if self.phase is not None:
            name, done, total = self.phase
            text = f"{done}/{total} units" if total is not None else f"{done} so far (as many as the verdicts need)"
            table.add_row(Text(name), Text(text))
        table.add_row(Text("trials"), Text(f"{self.done['complete']} complete, {self.done['pruned']} pruned, "
                                           f"{self.done['failed']} failed"))
        table.add_row(Text("running"), Text(self.current))
        if self.unit is not None:
            epoch, epochs = self.epochs
            miou = "" if self.last_miou is None else f"  val mIoU {self.last_miou:.4f}"
            bars = Table.grid(padding=(0, 1))
            bars.add_row(ProgressBar(total=max(epochs, 1), completed=epoch, width=30), Text(f"{epoch}/{epochs}{miou}"))
            step, steps = self.steps
            bars.add_row(ProgressBar(total=max(steps, 1), completed=step, width=30), Text(f"step {step}/{steps}"))
            table.add_row(Text("progress"), bars)
        best = self.best_by_mean()
        if best is not None:
            table.add_row(Text("best by mean"), Text(f"{best[0]}  mIoU {best[1]:.4f} over {best[2]} run(s)"))
        return table

    def _line(self, text: str) -> None:
        from sweeper import console

        console.err.print(text, highlight=False, markup=False, soft_wrap=True)

    def event(self, kind: str, info: dict) -> None:
        import time

        unit = info.get("unit")
        if kind == "start":
            self.unit = unit
            self.unit_started = time.monotonic()
            self.phase = info.get("progress", self.phase)
            self.current = f"#{info['trial']} {unit.candidate} seed {unit.seed} fold {unit.fold} ({unit.phase})"
            self.epochs, self.steps, self.last_miou = (0, info["epochs"]), (0, 0), None
        elif kind == "step":
            self.steps = (info["step"] + 1, info["steps"])
            if time.monotonic() - self._drawn < 0.25:
                return  # a step is cheap; redrawing at every one is not
        elif kind == "epoch":
            m = info["metrics"]
            self.epochs = (m.epoch + 1, self.epochs[1])
            self.last_miou = m.miou
            if not self.interactive:
                self._line(f"{self.current} epoch {m.epoch + 1}/{self.epochs[1]} val mIoU {m.miou:.4f} "
                           f"train loss {m.train_loss:.4f} ({m.seconds:.1f} s)")
        elif kind == "end":
            state = info["state"]
            reused = state.startswith("reused")  # a run of the same content from another study: no time spent
            key = "complete" if state == "complete" or reused else "pruned" if state == "pruned" else "failed"
            self.done[key] += 1
            value = info.get("value")
            if key == "complete" and value is not None:
                self.runs.setdefault(str(unit.candidate), []).append(value)
                if not reused:  # the ETA comes from measured training times only
                    self.durations.append(info.get("seconds") or time.monotonic() - getattr(self, "unit_started", 0))
            if self.phase is not None:
                self.phase = (self.phase[0], self.phase[1] + 1, self.phase[2])
            self.unit = None
            shown = "-" if value is None else f"{value:.4f}"
            extra = f": {info['reason']}" if info.get("reason") else ""
            # One line per finished trial, on a terminal too: it stays in the scrollback.
            self._line(f"trial {info['trial']} {unit.candidate} seed {unit.seed} fold {unit.fold} "
                       f"[{unit.phase}] {state} mIoU {shown}{extra}")
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
            self.current, self.unit = f"{waited}; {how_long}", None
            if not self.interactive and getattr(self, "_waited_for", None) != numbers:
                self._waited_for = numbers  # one line per set of trials waited for, not one per poll
                self._line(self.current)
        if self.live is not None:
            self._drawn = time.monotonic()
            self.live.update(self._render())


def print_invalid(invalid) -> None:
    from sweeper import console
    from sweeper.report.zoo import render_invalid

    console.err.print(render_invalid(invalid))


def _clock(seconds: float) -> str:
    """``1:05`` or ``1:02:05``."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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
