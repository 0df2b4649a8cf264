"""What the command line costs before any work: ``--help`` and ``spaces list|show|check``
against importing torch (what they cost before they stopped importing it).

Each command runs in a fresh interpreter, interleaved rounds, median wall time.
The last lines are ``RESULT name=value``; the goals are help < 1 s and check < 2 s.

    python bench/cli.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS = {
    "help": ["-m", "search", "--help"],
    "spaces_list": ["-m", "search", "spaces", "list"],
    "spaces_show": ["-m", "search", "spaces", "show", "joint"],
    "spaces_check": ["-m", "search", "spaces", "check", "spaces/default.yaml"],
    "import_torch": ["-c", "import torch"],
    "import_torch_timm_kornia": ["-c", "import torch, timm, kornia"],
}


def _time(args: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 7")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(rounds):  # interleaved: a busy moment hits every command alike
        for name, cmd in COMMANDS.items():
            times[name].append(_time(cmd))
    median = {name: statistics.median(ts) for name, ts in times.items()}
    for name, value in median.items():
        print(f"{name:<26} median {value:6.2f} s over {rounds} runs")
    print(f"RESULT help_s={median['help']:.2f}")
    print(f"RESULT spaces_check_s={median['spaces_check']:.2f}")
    print(f"RESULT check_vs_import_torch={median['spaces_check'] / median['import_torch']:.2f}")


if __name__ == "__main__":
    main()
