"""The ``sslsearch`` command line (argparse only; the work is in the packages).

sslsearch run [SPACE.yaml] [--out RUN_DIR] [--trials N] [--epochs E]
              [--concurrency C] [--address RAY_ADDRESS] [--set key.path=value ...]
sslsearch resume RUN_DIR [SPACE.yaml] [--set ...]
sslsearch confirm RUN_DIR [--top K] [--controls M] [--epochs E] [--seeds S] [--set ...]
sslsearch report RUN_DIR
sslsearch spaces list | check FILE... | show FILE  [--set ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainables.errors import InputError, SSLSearchError

__all__ = ["main"]


def _parse_sets(items: Sequence[str]) -> dict[str, Any]:
    """``key.path=value`` -> {key.path: value}; each value read as the space files are
    (safe YAML, aliases bounded)."""
    from spaces import SpecError
    from spaces.load import load_with_lines

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key or "" in key.split("."):
            raise InputError(f"--set {item!r}: expected key.path=value")
        try:
            out[key] = load_with_lines(raw, f"--set {key}")[0] if raw else ""
        except SpecError as err:
            raise InputError(f"--set {item[:200]!r}: {err.problems[0][3]}") from None
    return out


def _space_path(space: str | None) -> Path:
    from spaces import shipped_spaces

    if space is None:
        return shipped_spaces()["default"]
    path = Path(space)
    if path.exists():
        return path
    shipped = shipped_spaces()
    if space in shipped:
        return shipped[space]
    if path.suffix not in (".yaml", ".yml") and len(path.parts) == 1:  # a shipped name?
        from spaces import SpecError
        from trainables._registry import suggest

        names = list(shipped)
        message = f"no such file or shipped space{suggest(space, names)}; shipped: "
        raise SpecError([(space, 0, "", message + ", ".join(names))])
    return path


def _cmd_run(args: argparse.Namespace) -> int:
    from spaces import load_spec

    overrides = _parse_sets(args.set or [])
    for flag, key in (("trials", "trials"), ("epochs", "epochs"), ("concurrency", "concurrency")):
        if getattr(args, flag) is not None:
            overrides[f"budget.{key}"] = getattr(args, flag)
    from search.run import load_trainable

    trainable = load_trainable(args.trainable) if args.trainable else None
    spec = load_spec(
        _space_path(args.space), overrides=overrides, builtin_trainable=trainable is None
    )
    out = args.out or f"runs/{spec.study.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    from search.run import run_search

    print(
        f"sslsearch: study '{spec.study.name}' from {spec.source}: {spec.budget.trials} trials x "
        f"{spec.budget.epochs} epochs, {spec.budget.concurrency} at a time -> {out}",
        flush=True,
    )
    run_search(
        spec, out=out, address=args.address, trainable=trainable, storage_path=args.storage_path
    )
    return 0


def _cmd_resume(args: argparse.Namespace) -> int:
    from analysis.rundir import RunDir
    from search.run import load_trainable, resume_search
    from spaces import load_spec

    run = RunDir(args.run_dir)
    trainable = load_trainable(args.trainable) if args.trainable else None
    builtin = trainable is None and run.info().builtin_trainable
    spec = None
    if args.space or args.set:
        source = Path(args.space) if args.space else run.spec_path
        spec = load_spec(source, overrides=_parse_sets(args.set or []), builtin_trainable=builtin)
    resume_search(args.run_dir, spec=spec, address=args.address, trainable=trainable)
    return 0


def _cmd_confirm(args: argparse.Namespace) -> int:
    from analysis.ablation import confirmation
    from analysis.holds import holds_sentences
    from analysis.rundir import RunDir
    from search.confirm import run_confirm

    sets = {f"{k}": v for k, v in _parse_sets(args.set or []).items()}
    run_confirm(
        args.run_dir,
        top=args.top,
        controls=args.controls,
        epochs=args.epochs,
        seeds=args.seeds,
        sets=sets or None,
        address=args.address,
    )
    run = RunDir(args.run_dir)
    c = confirmation(run)
    if c is not None:
        ceiling = (run.metrics().get(c.metric) or {}).get("ceiling")
        for line in holds_sentences(c, points=ceiling == 1.0):
            print(line)
    print(f"wrote {run.confirm_path}, {run.ablation_path('md')} (.tex, .csv), {run.report_path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from analysis import format_summary, write_report
    from analysis.rundir import RunDir

    run = RunDir(args.run_dir)
    if not run.spec_path.exists():
        raise InputError(f"{run.path}: not a run directory (no {run.spec_path.name})")
    report = write_report(run.path)  # rewrites the tables first
    print(format_summary(run.path))
    print(f"wrote {run.trials_path}, {run.curves_path}, {report} and {run.figures_dir}/")
    return 0


def _cmd_spaces(args: argparse.Namespace) -> int:
    from spaces import SpecError, load_spec, shipped_spaces

    if args.action == "list":
        for name, path in shipped_spaces().items():
            try:
                description = load_spec(path).description.split("\n")[0]
            except SpecError:
                description = "(invalid: run `sslsearch spaces check`)"
            print(f"{name:<28} {description}")
        return 0
    if not args.files:
        raise InputError(f"spaces {args.action}: give at least one FILE")
    sets = _parse_sets(args.set or [])
    if args.action == "check":
        from search.dataset import check_data

        failed = 0
        for file in args.files:
            try:
                spec = load_spec(_space_path(file), overrides=sets)
                check_data(spec)  # data given options: decoded as run would
                print(f"{file}: ok" + (f" ({len(spec.notes)} note(s))" if spec.notes else ""))
                for note in spec.notes:
                    print(f"note: {note}")
            except SpecError as err:
                failed += 1
                for line in err.lines():
                    print(line)
        return 1 if failed else 0
    for file in args.files:
        spec = load_spec(_space_path(file), overrides=sets)
        print(_show(spec))
        for note in spec.notes:
            print(f"note: {note}")
    return 0


def _show(spec: Any) -> str:
    lines = [f"{spec.source}: {spec.description}", "", "parameters:"]
    for p in spec.params:
        when = "".join(f"  when {name} = {' | '.join(map(str, values))}" for name, values in p.when)
        lines.append(f"  {p.name:<32} {p.display()}{when}")
    s = spec.study
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in s.objectives)
    lines += [
        "",
        f"objective: {objectives}",
        f"sampler:   {s.sampler.name} {dict(s.sampler.options)}",
        f"pruner:    {s.pruner.name} {dict(s.pruner.options)}",
        f"budget:    {spec.budget.trials} trials x {spec.budget.epochs} epochs, "
        f"{spec.budget.concurrency} concurrent, {spec.budget.cpu} CPU + {spec.budget.gpu} GPU each",
    ]
    for section, value in spec.base.items():
        lines.append(f"{section + ':':<10} {dict(value)}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sslsearch",
        description="Search SSL pretraining recipes with Ray Tune and Optuna.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a study (default: the shipped default space)")
    run.add_argument("space", nargs="?", help="space YAML file or shipped space name")
    run.add_argument("--out", help="run directory (default: runs/<study>-<time>)")
    run.add_argument("--trials", type=int, help="override budget.trials")
    run.add_argument("--epochs", type=int, help="override budget.epochs")
    run.add_argument("--concurrency", type=int, help="override budget.concurrency")
    run.add_argument("--address", help="attach to this Ray cluster (auto, ray://host:port)")
    run.add_argument(
        "--storage-path",
        metavar="URI",
        help="Tune experiment + checkpoints here (shared file system, s3://...), not in --out",
    )
    run.add_argument(
        "--trainable",
        metavar="MODULE:FUNCTION",
        help="your own Ray Tune function trainable instead of the built-in SSL trial",
    )
    run.add_argument(
        "--set", action="append", metavar="KEY.PATH=VALUE", help="override a spec value"
    )
    run.set_defaults(func=_cmd_run)
    resume = sub.add_parser("resume", help="continue an interrupted run to its budget")
    resume.add_argument("run_dir")
    resume.add_argument(
        "space", nargs="?", help="an edited space (fixed values and budget may change)"
    )
    resume.add_argument("--address", help="attach to this Ray cluster (auto, ray://host:port)")
    resume.add_argument(
        "--trainable", metavar="MODULE:FUNCTION", help="the run's own trainable, if not importable"
    )
    resume.add_argument(
        "--set", action="append", metavar="KEY.PATH=VALUE", help="override a spec value"
    )
    resume.set_defaults(func=_cmd_resume)
    confirm = sub.add_parser(
        "confirm",
        help="re-train the best configurations and controls at full length, with seeds",
    )
    confirm.add_argument("run_dir")
    confirm.add_argument("--top", type=int, help="how many of the best (default 3)")
    confirm.add_argument(
        "--controls", type=int, help="configurations spread over the rest (default 3)"
    )
    confirm.add_argument("--epochs", type=int, help="the long budget (default 2x the search's)")
    confirm.add_argument("--seeds", type=int, help="seeds per configuration (default 3)")
    confirm.add_argument("--address", help="attach to this Ray cluster (auto, ray://host:port)")
    confirm.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override a spec value for the long runs (e.g. data.options.count=8000)",
    )
    confirm.set_defaults(func=_cmd_confirm)
    report = sub.add_parser("report", help="(re)write the tables, report.html and figures of a run")
    report.add_argument("run_dir")
    report.set_defaults(func=_cmd_report)
    spaces = sub.add_parser("spaces", help="list, check or show search spaces")
    spaces.add_argument("action", choices=["list", "check", "show"])
    spaces.add_argument("files", nargs="*")
    spaces.add_argument(
        "--set", action="append", metavar="KEY.PATH=VALUE", help="as run's: check with it"
    )
    spaces.set_defaults(func=_cmd_spaces)
    return parser


class _Console(logging.Handler):
    """The library's log on the console: progress to stdout, problems to stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.WARNING:
            print(f"sslsearch: {text}", file=sys.stderr, flush=True)
        else:
            print(text, flush=True)


def _log_to_console() -> None:
    handler = _Console()
    handler.setFormatter(logging.Formatter("%(message)s"))
    for package in ("search", "spaces", "trainables", "analysis"):
        log = logging.getLogger(package)
        log.setLevel(logging.INFO)
        log.addHandler(handler)
        log.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status.

    0: done; 1: a failed check, no trial could run, or a bug (with its traceback);
    2: bad input, in one line per problem; 130: interrupted.
    """
    args = _parser().parse_args(argv)
    _log_to_console()
    try:
        return args.func(args)
    except SSLSearchError as err:  # the project's own: one line each, never a traceback
        for line in err.lines():
            print(f"sslsearch: {line}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(
            "sslsearch: interrupted; finished trials are kept in the run directory", file=sys.stderr
        )
        return 130
