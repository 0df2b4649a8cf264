"""What reading a space file costs against PyYAML's own ``safe_load`` of the same text.

sslsearch reads a space with the line of every key (for located errors) and refuses
files whose aliases expand past 100,000 values. Side by side, median of interleaved
runs: a shipped space, a large legitimate file (2,000 parameters), and alias bombs of
6 and 9 levels (380 and 520 bytes; 9^7 and 9^10 values once expanded, which the
old reader expanded line by line: 82 s and 4.3 GB for 6 levels).

    python bench/yaml_load.py [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import yaml

from spaces.errors import SpecError
from spaces.load import load_with_lines

ROOT = Path(__file__).resolve().parents[1]


def _bomb(levels: int) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"data: {{name: digits, options: {{x: *a{levels}}}}}")
    return "\n".join(lines) + "\n"


def _large() -> str:
    params = "".join(f"  p{i}/x: {{type: float, low: 0.0, high: 1.0}}\n" for i in range(2000))
    return "budget: {trials: 4}\nparams:\n" + params


def _time(fn, text: str) -> float:
    start = time.perf_counter()
    with contextlib.suppress(SpecError):  # the bombs are refused: that is the measured path
        fn(text)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 9")
    args = parser.parse_args()
    rounds = 3 if args.quick else 9
    files = {
        "default.yaml": (ROOT / "spaces" / "default.yaml").read_text(),
        "2000 params": _large(),
        "alias bomb, 6 levels": _bomb(6),
        "alias bomb, 9 levels": _bomb(9),
    }
    ratios = {}
    for name, text in files.items():
        ours, pyyaml = [], []
        for _ in range(rounds):
            ours.append(_time(lambda t: load_with_lines(t, "bench.yaml"), text))
            pyyaml.append(_time(yaml.safe_load, text))
        a, b = statistics.median(ours), statistics.median(pyyaml)
        ratios[name] = a / b
        print(
            f"{name:<22} {len(text):>7} bytes  sslsearch {a * 1e3:8.2f} ms  "
            f"safe_load {b * 1e3:8.2f} ms  ratio {a / b:5.2f}"
        )
    print(f"RESULT max_load_vs_safe_load={max(ratios.values()):.2f}")
    print(f"RESULT bomb9_load_vs_safe_load={ratios['alias bomb, 9 levels']:.2f}")


if __name__ == "__main__":
    main()
