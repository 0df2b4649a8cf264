"""The sslsearch command: bad input exits non-zero with one located line, before Ray."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def sslsearch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "search", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_missing_space_file(tmp_path):
    proc = sslsearch("run", "nope.yaml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["sslsearch: nope.yaml no such file"]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "budget: {trials: 2}\nparamz: {}\n",
            "bad.yaml:2 paramz: unknown key (did you mean 'params'?)",
        ),
        ("params: [1, 2\n", "bad.yaml:2 "),
        (
            "params:\n  mask/ratio: {type: float, low: 0.9, high: 0.2}\n",
            "bad.yaml:2 params/mask/ratio: low (0.9) > high (0.2)",
        ),
    ],
)
def test_bad_space_exits_before_ray_starts(tmp_path, text, expected):
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    proc = sslsearch("run", "bad.yaml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sslsearch: " + expected)
    assert not (tmp_path / "run").exists()
    assert "ray" not in proc.stdout.lower()


def test_bad_set_override_names_the_key(tmp_path):
    proc = sslsearch("run", "--set", "budget.trials=many", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert "budget/trials: expected an integer >= 1, got 'many'" in proc.stderr


def test_spaces_check_reports_every_problem(tmp_path):
    (tmp_path / "a.yaml").write_text(
        "budget: {trials: 0}\nparams:\n  x/y: {type: int, low: 3, high: 1}\n", encoding="utf-8"
    )
    (tmp_path / "b.yaml").write_text(
        "params:\n  mask/ratio: {type: float, low: 0.5, high: 0.9}\n", encoding="utf-8"
    )
    proc = sslsearch("spaces", "check", "a.yaml", "default", "b.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert lines[:4] == [
        "a.yaml:1 budget/trials: expected an integer >= 1, got 0",
        "a.yaml:3 params/x/y: low (3) > high (1)",
        "default: ok",
        "b.yaml: ok (1 note(s))",
    ]  # advice does not fail the check
    assert lines[4].startswith("note: b.yaml:2 params/mask/ratio: a ratio masks round(16 x")
    assert len(lines) == 5


def test_spaces_check_and_show_take_the_overrides_run_takes(tmp_path):
    proc = sslsearch("spaces", "check", "default", "--set", "probe.every=0", cwd=tmp_path)
    assert proc.returncode == 1
    [line] = proc.stdout.splitlines()
    assert line.endswith("default.yaml (override) probe/every: expected >= 1, got 0")
    proc = sslsearch("spaces", "show", "default", "--set", "budget.trials=7", cwd=tmp_path)
    assert proc.returncode == 0
    assert "budget:    7 trials x 30 epochs" in proc.stdout


def test_spaces_check_refuses_data_that_run_would_refuse(tmp_path):
    # run refuses it in search.dataset.builtin_dataset, located the same way (test_dataset)
    (tmp_path / "empty").mkdir()
    (tmp_path / "s.yaml").write_text(
        "data: {name: image_folder, options: {path: empty}}\n", encoding="utf-8"
    )
    proc = sslsearch("spaces", "check", "s.yaml", cwd=tmp_path)
    assert proc.returncode == 1
    refusal = "s.yaml:1 data/options/path: empty has no class sub-folders"
    assert proc.stdout.splitlines() == [refusal]


def test_spaces_list_names_the_default(tmp_path):
    proc = sslsearch("spaces", "list", cwd=tmp_path)
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert {"default", "mask_ratio_sweep", "joint"} <= set(names)


def test_missing_data_path_fails_before_the_run_directory_is_made(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "data: {name: image_folder, options: {path: nowhere}}\n", encoding="utf-8"
    )
    proc = sslsearch("run", "s.yaml", "--out", "run", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sslsearch: s.yaml:1 data/options/path: no such file or directory: nowhere"
    ]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
@pytest.mark.parametrize("bench", ["augment", "masking"])
def test_benchmarks_run_quick_and_print_results(bench):
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / f"{bench}.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert results and proc.stdout.strip().splitlines()[-1] == results[-1]
    for line in results:
        _, value = line.removeprefix("RESULT ").split("=")
        assert float(value) > 0, line


def test_spaces_show_lists_conditions_and_grids(tmp_path):
    proc = sslsearch("spaces", "show", "masking_strategy", cwd=tmp_path)
    assert proc.returncode == 0
    assert "mask/block/aspect" in proc.stdout and "when mask/strategy = block" in proc.stdout
    sweep = sslsearch("spaces", "show", "mask_ratio_sweep", cwd=tmp_path)
    assert "grid [0.1, 0.2, 0.3" in sweep.stdout and "27 trials" in sweep.stdout


def test_spaces_show_prints_the_notes_last(tmp_path):
    (tmp_path / "b.yaml").write_text(
        "params:\n  mask/ratio: {type: float, low: 0.5, high: 0.9}\n", encoding="utf-8"
    )
    lines = sslsearch("spaces", "show", "b.yaml", cwd=tmp_path).stdout.splitlines()
    assert lines[-1].startswith("note: b.yaml:2 params/mask/ratio: a ratio masks round(16 x")
    assert not any(ln.startswith("note:") for ln in lines[:-1])
    shipped = sslsearch("spaces", "show", "default", cwd=tmp_path).stdout
    assert "note:" not in shipped


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["spaces", "list"], ["spaces", "check", "default"], ["spaces", "show", "joint"]],
    ids=" ".join,
)
def test_help_and_spaces_commands_import_neither_torch_nor_ray(tmp_path, argv):
    code = (
        "import sys\nfrom search.cli import main\n"
        "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "heavy = ('torch', 'ray', 'timm', 'kornia', 'torchvision')\n"
        "print('IMPORTED', sorted(m for m in heavy if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, *argv], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "IMPORTED []"


def test_a_bug_is_not_disguised_as_bad_input(monkeypatch):
    import search.cli as cli

    def broken(args):
        raise ValueError("a bug, not the user's input")

    monkeypatch.setattr(cli, "_cmd_spaces", broken)
    with pytest.raises(ValueError, match="a bug"):  # propagates: Python shows it, exit 1
        cli.main(["spaces", "list"])


def test_bad_input_that_is_not_a_space_file_is_one_line_and_exit_2(tmp_path):
    proc = sslsearch("report", "nowhere", cwd=tmp_path)
    assert (proc.returncode, proc.stderr.strip()) == (
        2,
        "sslsearch: nowhere: not a run directory (no spec.yaml)",
    )
    proc = sslsearch("run", "--set", "novalue", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "sslsearch: --set 'novalue': expected key.path=value"


def test_resume_of_a_directory_without_a_run_or_its_study_is_bad_input(tmp_path):
    proc = sslsearch("resume", "nowhere", cwd=tmp_path)
    assert (proc.returncode, proc.stderr.strip().splitlines()) == (
        2,
        [f"sslsearch: {tmp_path / 'nowhere'} holds no run (spec.yaml is missing)"],
    )
    run = tmp_path / "run"
    run.mkdir()
    (run / "spec.yaml").write_text("study: {name: s}\n", encoding="utf-8")
    for command in ("resume", "report"):
        proc = sslsearch(command, "run", cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert "its study is missing" in proc.stderr and len(proc.stderr.splitlines()) == 1
        assert not (run / "study.db").exists() and not (run / "trials.parquet").exists()


def _finished_search(run_dir: Path, trials: int, **study: object) -> None:
    """A run directory whose study holds ``trials`` completed trials (no Ray needed)."""
    import optuna

    from analysis.rundir import RunDir
    from spaces import parse_spec
    from spaces.compile import define_by_run

    spec = parse_spec(
        {
            "study": {"name": "cli", "storage": "sqlite:///study.db", **study},
            "params": {
                "mask/ratio": {"type": "float", "low": 0.2, "high": 0.8},
                "optim/lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            },
        },
        source="test",
    )
    run_dir.mkdir()
    RunDir(run_dir).write_spec(spec)
    study = optuna.create_study(
        study_name="cli", storage=f"sqlite:///{run_dir / 'study.db'}", direction="maximize"
    )
    study.optimize(lambda t: define_by_run(spec)(t)["mask"]["ratio"], n_trials=trials)


def test_confirm_refuses_bad_input_in_one_line_before_ray(tmp_path):
    proc = sslsearch("confirm", "nowhere", cwd=tmp_path)
    assert (proc.returncode, proc.stderr.strip().splitlines()) == (
        2,
        [f"sslsearch: {tmp_path / 'nowhere'} holds no run (spec.yaml is missing)"],
    )
    _finished_search(tmp_path / "run", trials=3)
    for args, expected in (
        (["--top", "0"], "confirm --top 0: must be >= 1"),
        (["--seeds", "-1"], "confirm --seeds -1: must be >= 1"),
        (["--set", "budget.concurrency=zero"], "budget/concurrency: expected an integer"),
        (["--set", "data.options.colour=1"], "data/options/colour: unknown option"),
    ):
        proc = sslsearch("confirm", "run", *args, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and expected in proc.stderr, args
    assert not (tmp_path / "run" / "confirm").exists()
    _finished_search(tmp_path / "one", trials=1)
    proc = sslsearch("confirm", "one", cwd=tmp_path)
    assert proc.returncode == 2
    assert "confirm needs at least 2 completed configurations" in proc.stderr
    _finished_search(tmp_path / "pbt", trials=3, scheduler={"name": "pbt", "mutate": ["optim/lr"]})
    proc = sslsearch("confirm", "pbt", cwd=tmp_path)
    assert proc.returncode == 2 and "under PBT" in proc.stderr


def test_a_run_on_a_read_only_share_is_one_line_for_each_command(tmp_path, monkeypatch, capsys):
    import search.cli as cli

    _finished_search(tmp_path / "run", trials=3)
    capsys.readouterr()  # Optuna's log of the search
    before = sorted(p.name for p in (tmp_path / "run").iterdir())
    real = os.access
    # the share as the file system answers it (root may write anywhere: asked as os.access)
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != tmp_path / "run" and real(p, mode))
    for command in ("report", "resume", "confirm"):
        assert cli.main([command, str(tmp_path / "run")]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == (
            f"sslsearch: {tmp_path / 'run'}: cannot write here (no permission), and {command} "
            "writes into the run directory; copy the run somewhere writable"
        )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == before  # nothing written


def test_a_misspelt_shipped_space_is_named_with_the_shipped_ones(tmp_path, monkeypatch, capsys):
    import search.cli as cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["spaces", "check", "defualt", "default"]) == 1  # the second is checked
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        "defualt no such file or shipped space (did you mean 'default'?); shipped: "
    )
    assert "mask_ratio_sweep" in out[0] and out[1] == "default: ok"
    assert cli.main(["spaces", "check", "nope.yaml"]) == 1  # a file name: the file is missing
    assert capsys.readouterr().out.strip() == "nope.yaml no such file"


def test_set_values_are_read_as_space_files_are(capsys):
    import search.cli as cli
    from trainables.errors import InputError

    assert cli._parse_sets(["budget.trials=7", "probe.names=[knn, rankme]", "x="]) == {
        "budget.trials": 7,
        "probe.names": ["knn", "rankme"],
        "x": "",
    }
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 7)]
    bomb = f"aug.hflip.p=[{', '.join(levels)}]"  # 9^7 values once its aliases are followed
    with pytest.raises(InputError, match="expands to more than 100,000 values"):
        cli._parse_sets([bomb])
    with pytest.raises(InputError, match="unsafe tag refused"):
        cli._parse_sets(["x=!!python/object/apply:os.system [ls]"])
    for malformed in (".x=1", "a..b=1", "a.=1", "=1", "a"):
        with pytest.raises(InputError, match=r"expected key\.path=value"):
            cli._parse_sets([malformed])
