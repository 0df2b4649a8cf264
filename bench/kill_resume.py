"""Is the random-kill resume test deterministic in what it asserts? Run it N times in a
row while another process keeps both cores busy, and count the passes.

Each round runs ``tests/test_recover.py::test_kill_9_at_random_moments_then_resume``
(one Ctrl-C and four SIGKILLs of the driver at random moments, then a resume to the
budget) in a fresh pytest process; the load is one busy Python process per core.
The last lines are ``RESULT kill_resume_rounds=N`` and ``RESULT kill_resume_passes=P``.

    python bench/kill_resume.py [--rounds 20] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/test_recover.py::test_kill_9_at_random_moments_then_resume"


def _burn(stop: mp.Event) -> None:  # keep one core busy
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    stop = mp.Event()
    burners = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(2)]
    for b in burners:
        b.start()
    passed = 0
    try:
        for i in range(rounds):
            start = time.monotonic()
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", TEST],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            ok = proc.returncode == 0
            passed += ok
            tail = "" if ok else "\n" + proc.stdout[-2500:]
            print(
                f"round {i + 1}/{rounds}: {'pass' if ok else 'FAIL'} "
                f"({time.monotonic() - start:.0f} s){tail}",
                flush=True,
            )
    finally:
        stop.set()
        for b in burners:
            b.join(timeout=5)
    print(f"RESULT kill_resume_rounds={rounds}")
    print(f"RESULT kill_resume_passes={passed}")


if __name__ == "__main__":
    main()
