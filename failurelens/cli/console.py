"""What the CLI shows: progress bars for long jobs, and the printed tables."""

from __future__ import annotations

import sys
from typing import Any


class ProgressBars:
    """A progress callback for a job's stream: one tqdm bar per stage (``bars(progress)`` per
    update). Close it when the job ends (``close()``, or use it as a context manager)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self._bars: dict[str, Any] = {}

    def __call__(self, p: Any) -> None:
        from tqdm import tqdm

        bar = self._bars.get(p.stage)
        if bar is None:
            self.close()
            bar = self._bars[p.stage] = tqdm(total=p.total or None, desc=f"{self.desc}: {p.stage}", unit="it", leave=True, file=sys.stderr)
        if p.total and bar.total != p.total:
            bar.total = p.total
        bar.n = p.done
        if p.message:
            bar.set_postfix_str(p.message, refresh=False)
        bar.refresh()

    def close(self) -> None:
        for b in self._bars.values():
            b.close()
        self._bars.clear()

    def __enter__(self) -> ProgressBars:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileBar:
    """A bar counting files (uploads): ``bar(done, total)``."""

    def __init__(self, desc: str, unit: str = "img") -> None:
        from tqdm import tqdm

        self._bar = tqdm(desc=desc, unit=unit, file=sys.stderr)

    def __call__(self, done: int, total: int) -> None:
        self._bar.total = total
        self._bar.n = done
        self._bar.refresh()

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> FileBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def print_stack(rec: dict[str, Any]) -> None:
    print(f"store:  {rec['store']}")
    if rec.get("triton"):
        print(f"triton: grpc {rec['triton']['grpc']}  metrics {rec['triton']['metrics']}")
    for name, s in rec["services"].items():
        print(f"{name:16s} {s['address']:22s} metrics {s['metrics']}")
    print(f"logs:   {rec['log_dir']}", flush=True)


def print_lines(lines: list[str]) -> None:
    for line in lines:
        print(line)
