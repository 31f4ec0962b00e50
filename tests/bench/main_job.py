"""The main job as a user runs it: ``failurelens demo`` (the README's first command, install excluded).

    python tests/bench/main_job.py [--state-dir DIR]

Runs the command in a fresh state folder (the rendered world is kept between runs in
``<state-dir>-world`` and copied in, so the measured time is the job's, not the world's rendering,
unless --render), streams its output, and prints the path of the HTML report it wrote as
``report_html: PATH`` and, last, ``main_job_seconds: X`` (target: <= 180 on 2 cores).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--state-dir", default=str(ROOT / ".state" / "bench-main-job"))
    ap.add_argument("--render", action="store_true", help="include rendering the world in the measured time")
    args = ap.parse_args()
    state = Path(args.state_dir)
    keep = Path(str(state) + "-world")
    shutil.rmtree(state, ignore_errors=True)
    if not args.render and (keep / "world.json").exists():
        shutil.copytree(keep, state / "world")
    exe = Path(sys.executable).with_name("failurelens")
    t0 = time.monotonic()
    proc = subprocess.Popen([str(exe), "--state-dir", str(state), "demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    report = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(f"[{time.monotonic() - t0:6.1f}s] {line}")
        m = re.match(r"report: (.+\.html)$", line.strip())
        if m:
            report = m.group(1)
    rc = proc.wait()
    seconds = time.monotonic() - t0
    if not keep.exists() and (state / "world" / "world.json").exists():
        shutil.copytree(state / "world", keep)
    if rc != 0 or not report:
        print(f"the main job failed (exit {rc})", file=sys.stderr)
        return 1
    print(f"report_html: {report}")
    print(f"main_job_seconds: {seconds:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
