"""THE run directory: its paths, ``run.json``, the resolved spec, the study, the results.

Every file name of a run directory, and every key sslsearch writes on the
study's trials, is a constant here; :class:`RunDir` reads and writes them.
``search`` writes a run through it and ``analysis`` reads one through it, so
neither spells a file name or an attribute key itself.

Layout::

    RUN_DIR/spec.yaml        the resolved spec (spec.N.yaml: before the N-th resume's edit)
            run.json         which trainable ran; the Tune experiments of each session
            study.db         the Optuna study (SQLite unless spec.yaml names a storage)
            baseline.json    the probes on the random-init encoder
            metrics.json     every probe metric: its direction, whether it needs labels
            tune/, tune.N/   the Tune experiment of the run and of each resume
            trials.parquet, curves.parquet, report.html, figures/
            confirm.json     ``sslsearch confirm``'s plan (its long runs: <study>.confirm)
            confirm/, confirm.N/  the Tune experiment of each confirm session
            confirm.parquet, ablation.md, ablation.tex, ablation.csv

Example:
    >>> run = RunDir("/tmp/no-such-run")
    >>> run.spec_path.name, run.holds_run()
    ('spec.yaml', False)
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from analysis.results import join, result_files
from spaces import load_spec
from spaces.compile import FIXED_ATTR_PREFIX, SEED_ATTR
from spaces.study import storage_file, storage_scheme
from trainables.catalogue import metric_direction, shipped
from trainables.errors import InputError

if TYPE_CHECKING:
    import optuna

    from spaces import SearchSpec

__all__ = [
    "ABLATION_STEM",
    "BASELINE_FILE",
    "CONFIRM_DIR",
    "CONFIRM_FILE",
    "CONFIRM_TABLE",
    "CURVES_FILE",
    "FIGURES_DIR",
    "METRICS_FILE",
    "REPORT_FILE",
    "RUN_FILE",
    "SPEC_FILE",
    "STUDY_FILE",
    "TRIALS_FILE",
    "TUNE_DIR",
    "Attr",
    "RunDir",
    "RunInfo",
    "connect_storage",
    "default_storage_url",
    "open_storage",
    "resolve_storage_url",
    "side_study_name",
    "write_text_atomic",
]

SPEC_FILE = "spec.yaml"
RUN_FILE = "run.json"
STUDY_FILE = "study.db"
BASELINE_FILE = "baseline.json"
METRICS_FILE = "metrics.json"
TRIALS_FILE = "trials.parquet"
CURVES_FILE = "curves.parquet"
REPORT_FILE = "report.html"
FIGURES_DIR = "figures"
TUNE_DIR = "tune"
CONFIRM_DIR = "confirm"
CONFIRM_FILE = "confirm.json"
CONFIRM_TABLE = "confirm.parquet"
ABLATION_STEM = "ablation"


class Attr:
    """The user-attribute keys sslsearch writes on the study's trials."""

    TUNE_TRIAL_ID = "tune_trial_id"
    """Ray Tune's id of the trial (its ``result.json`` rows)."""
    TUNE_EXPERIMENT = "tune_experiment"
    """The Tune experiment (``tune``, ``tune.N``) the trial ran in."""
    TRIAL_NUMBER = "trial_number"
    """On a multi-objective run's pruning twin: the number of its trial in the main study;
    on a noise-floor run the search had already made: that search trial."""
    PRUNED_AT = "pruned_at"
    """The epoch at which the trial was pruned."""
    FAIL_REASON = "fail_reason"
    """Why the trial failed, in one line."""
    INTERRUPTED = "interrupted"
    """The run stopped while the trial ran; it was re-run on resume."""
    RESUMED_FROM = "resumed_from"
    """On a re-run: the number of the interrupted trial it continues."""
    RESUME_STEP = "resume_step"
    """On a re-run: the epoch of the checkpoint it started from (0: from scratch)."""
    RESUME_CHECKPOINT = "resume_checkpoint"
    """On a re-run: the checkpoint directory it started from."""
    NOISE_OF = "noise_of"
    """On a re-run in the ``<study>.noise`` study: the search trial it repeats."""
    SEED = SEED_ATTR
    """On a re-run in the ``<study>.noise`` or ``<study>.confirm`` study: its ``train.seed``;
    on a search trial whose configuration ran before: the other seed it ran with."""
    CONFIG_KEY = "config_key"
    """On a long run in the ``<study>.confirm`` study: its configuration (``config_key``)."""
    CONFIRM_PLAN = "confirm_plan"
    """On a long run: the tag of the plan it belongs to (its budget and overrides)."""
    METRICS = "metrics"
    """On a long run: every metric of its last epoch."""
    PBT_SCHEDULE = "pbt_schedule"
    """Under PBT: each exploit (epoch, cloned trial, new parameter values)."""
    FIXED_PREFIX = FIXED_ATTR_PREFIX
    """``fixed/<name>``: a fixed parameter's value as the trial ran it."""


@dataclass(frozen=True)
class RunInfo:
    """``run.json``: which trainable ran and where its Tune experiments are.

    Attributes:
        builtin_trainable: the built-in SSL trial (its spec is checked against trainables).
        trainable: ``module:function`` of a user's trainable, when importable by name.
        experiments: the Tune experiments, one per session (``tune``, ``tune.1``, ...).
        storage_path: where they are, when not in the run directory (``--storage-path``).
        started: the run's start-up (its study, the baselines) was finished and its
            first trial could start; False while it is set up, so that a resume after
            a kill then finishes it.
    """

    builtin_trainable: bool = True
    trainable: str | None = None
    experiments: tuple[str, ...] = (TUNE_DIR,)
    storage_path: str | None = None
    started: bool = True  # a run.json of an older version was written once set up

    def next_experiment(self) -> str:
        """The name of the next session's Tune experiment (``tune.N``)."""
        return f"{TUNE_DIR}.{len(self.experiments)}"

    def with_experiment(self, name: str) -> RunInfo:
        return replace(self, experiments=(*self.experiments, name))


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: a kill mid-write leaves the old
    file (or none), never half of the new one.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "run.json"
        >>> write_text_atomic(path, "{}")
        >>> path.read_text(), [p.name for p in path.parent.iterdir()]
        ('{}', ['run.json'])
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def side_study_name(study_name: str, kind: str) -> str:
    """The study beside the search's that holds its ``kind`` of re-runs (``noise``:
    the noise floor's, ``confirm``: the long runs); the search's study keeps only
    the search's trials.

    Example:
        >>> side_study_name("default", "confirm")
        'default.confirm'
    """
    return f"{study_name}.{kind}"


def default_storage_url(run_dir: str | Path) -> str:
    """``sqlite:////abs/RUN_DIR/study.db``: openable by ``optuna`` CLI and optuna-dashboard.

    Example:
        >>> default_storage_url("/tmp/run")
        'sqlite:////tmp/run/study.db'
    """
    return f"sqlite:///{Path(run_dir).resolve() / STUDY_FILE}"


def resolve_storage_url(url: str | None, run_dir: str | Path) -> str:
    """The study's storage URL: ``RUN_DIR/study.db`` by default; a relative
    ``journal:PATH`` or ``sqlite:///PATH`` is taken relative to the run directory.

    Example:
        >>> resolve_storage_url("journal:study.log", "/tmp/run")
        'journal:/tmp/run/study.log'
    """
    if url is None:
        return default_storage_url(run_dir)
    path, scheme = storage_file(url), storage_scheme(url)
    if path is None or scheme is None or path.is_absolute():
        return url
    return f"{scheme}{Path(run_dir).resolve() / path}"


def _mismatch(study: optuna.Study, spec: SearchSpec) -> str | None:
    """How the study differs from the spec that made it (None: it does not)."""
    directions = [d.name.lower() for d in study.directions]
    wanted = [o.direction for o in spec.study.objectives]
    if directions != wanted:
        return f"the study's directions are {directions}, the spec's {wanted}"
    declared = {p.name for p in spec.params} | {"repeat"}  # repeat: the grid's seed axis
    sampled = {name for t in study.get_trials(deepcopy=False) for name in t.params}
    foreign = sorted(sampled - declared)
    if foreign:
        return f"its trials sampled {', '.join(foreign)}, which the spec does not declare"
    return None


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    """What ``optuna.create_study(storage=...)`` takes for ``url``.

    ``journal:PATH`` is a JournalStorage on a file (for shared file systems, where
    SQLite's locking is unreliable); anything else is an RDB URL (SQLite,
    PostgreSQL with ``pip install psycopg2-binary``, MySQL).

    Example:
        >>> type(open_storage("journal:/tmp/x.log")).__name__
        'JournalStorage'
    """
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(url.removeprefix("journal:")))
    return url


def connect_storage(url: str, run_dir: str | Path) -> None:
    """Open a storage a space names, once, before its run writes anything: a file
    storage's folder inside the run directory is created, a database is connected to
    (and its tables created, as the study would).

    Raises:
        InputError: naming the URL and why it does not open (a server that does not
            answer, a driver that is not installed, a folder that does not exist).
    """
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    path = storage_file(url)
    inside = Path(run_dir).resolve()
    if path is not None and path.parent.resolve().is_relative_to(inside):
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        storage = open_storage(url)
        if isinstance(storage, str):
            optuna.storages.RDBStorage(storage).engine.dispose()
    except (ImportError, OSError, SQLAlchemyError, optuna.exceptions.StorageInternalError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InputError(f"study/storage: cannot open {url}: {reason}") from None


class RunDir:
    """A run directory; every path and file of a run is reached through it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # -- paths -----------------------------------------------------------
    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def trials_path(self) -> Path:
        return self.path / TRIALS_FILE

    @property
    def curves_path(self) -> Path:
        return self.path / CURVES_FILE

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILE

    @property
    def figures_dir(self) -> Path:
        return self.path / FIGURES_DIR

    @property
    def confirm_plan_path(self) -> Path:
        return self.path / CONFIRM_FILE

    @property
    def confirm_path(self) -> Path:
        return self.path / CONFIRM_TABLE

    def ablation_path(self, suffix: str) -> Path:
        """``ablation.md``, ``.tex`` or ``.csv``."""
        return self.path / f"{ABLATION_STEM}.{suffix}"

    def holds_run(self) -> bool:
        """Whether a run was started here (its spec or its default study exists)."""
        return self.spec_path.exists() or (self.path / STUDY_FILE).exists()

    def require_new(self) -> None:
        """Raise :class:`InputError` unless a new run can start here: no run there yet,
        and the path a directory or creatable (checked before anything starts).

        Example:
            >>> RunDir(__file__).require_new()
            Traceback (most recent call last):
            ...
            trainables.errors.InputError: ... is a file, not a directory; choose another --out
        """
        existing = next(p for p in (self.path, *self.path.parents) if p.exists())
        if existing == self.path and not existing.is_dir():
            raise InputError(f"{self.path} is a file, not a directory; choose another --out")
        if not existing.is_dir():
            raise InputError(
                f"cannot create {self.path}: {existing} is a file; choose another --out"
            )
        if self.holds_run():
            raise InputError(f"{self.path} already holds a run; choose another --out")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise InputError(f"{self.path}: {existing} is not writable; choose another --out")

    def create(self) -> None:
        """Make the run directory (and its parents), or raise :class:`InputError`:
        a file system can refuse what :meth:`require_new`'s checks allowed
        (``/proc``, a full disk, a quota).

        Example:
            >>> RunDir("/proc/no-run-here").create()
            Traceback (most recent call last):
            ...
            trainables.errors.InputError: cannot create /proc/no-run-here: ...; choose another --out
        """
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            raise InputError(f"cannot create {self.path}: {reason}; choose another --out") from None

    # -- run.json --------------------------------------------------------
    def info(self) -> RunInfo:
        """``run.json`` (a run of an older version, without one: the built-in trainable)."""
        try:
            raw = json.loads((self.path / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return RunInfo()
        return RunInfo(
            builtin_trainable=bool(raw.get("builtin_trainable", True)),
            trainable=raw.get("trainable"),
            experiments=tuple(raw.get("experiments", (TUNE_DIR,))),
            storage_path=raw.get("storage_path"),
            started=bool(raw.get("started", True)),
        )

    def write_info(self, info: RunInfo) -> None:
        data = {**asdict(info), "experiments": list(info.experiments)}
        write_text_atomic(self.path / RUN_FILE, json.dumps(data, indent=2))

    def experiments_root(self) -> str:
        """The directory (or URI) that holds the run's Tune experiments.

        Example:
            >>> RunDir("/no/such/run").experiments_root()
            '/no/such/run'
        """
        return self.info().storage_path or str(self.path.resolve())

    # -- the spec --------------------------------------------------------
    def write_spec(self, spec: SearchSpec) -> None:
        """Write the resolved spec (what ``resume`` and the analyses read back)."""
        text = f"# resolved from {spec.source}\n" + yaml.safe_dump(spec.to_dict(), sort_keys=False)
        write_text_atomic(self.spec_path, text)

    def archive_spec(self) -> Path:
        """Copy ``spec.yaml`` aside (``spec.N.yaml``) before a resume writes an edited one
        over it (never moved: a kill in between would leave no spec)."""
        target = self.path / f"spec.{len(self.info().experiments) - 1}.yaml"
        write_text_atomic(target, self.spec_path.read_text(encoding="utf-8"))
        return target

    def require_writable(self, doing: str) -> None:
        """Raise :class:`InputError` unless ``doing`` (``report``, ``resume``, ``confirm``)
        can write into this run directory: a run on a read-only share is one line, not an
        ``OSError`` halfway through.

        Example:
            >>> RunDir("/proc/self").require_writable("report")
            Traceback (most recent call last):
            ...
            trainables.errors.InputError: /proc/self: cannot write here ...
        """
        if os.access(self.path, os.W_OK | os.X_OK):
            return
        try:
            read_only = bool(os.statvfs(self.path).f_flag & os.ST_RDONLY)
        except OSError:
            read_only = False
        why = "a read-only file system" if read_only else "no permission"
        raise InputError(
            f"{self.path}: cannot write here ({why}), and {doing} writes into the run "
            "directory; copy the run somewhere writable"
        )

    def require_run(self) -> None:
        """Raise :class:`InputError` unless a run was started here (its ``spec.yaml``)."""
        if not self.spec_path.exists():
            raise InputError(f"{self.path} holds no run ({self.spec_path.name} is missing)")

    def spec(self, *, check_trainables: bool = False) -> SearchSpec:
        """The resolved spec, parsed again.

        ``check_trainables`` validates it against the built-in trainable as a
        new run would (what ``resume`` needs); the analyses only read it.
        """
        builtin = check_trainables and self.info().builtin_trainable
        return load_spec(self.spec_path, builtin_trainable=builtin)

    # -- the study -------------------------------------------------------
    def study_ref(self) -> tuple[str, str]:
        """``(storage URL, study name)``: ``spec.yaml``'s storage resolved against this
        directory (``study.db`` in it by default), so a copied or moved run directory
        opens its own study, never the one it was copied from."""
        study = self.spec().study
        return resolve_storage_url(study.storage, self.path), study.name

    def open_study(self) -> optuna.Study:
        """The run's Optuna study, checked against ``spec.yaml``.

        Raises:
            InputError: the study is missing (never silently created anew), or its
                name, directions or parameters are not the spec's.
        """
        import optuna

        storage, name = self.study_ref()
        where = storage_file(storage)
        if where is not None and not where.exists():
            raise InputError(
                f"{self.path}: its study is missing ({where} does not exist); "
                "a run directory resumes and reports against its own study only"
            )
        from sqlalchemy.exc import SQLAlchemyError

        try:
            study = optuna.load_study(study_name=name, storage=open_storage(storage))
        except KeyError:
            raise InputError(f"{self.path}: there is no study '{name}' in {storage}") from None
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError, OSError) as err:
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise InputError(
                f"{self.path}: its study cannot be read from {storage}: {reason}"
            ) from None
        problem = _mismatch(study, self.spec())
        if problem:
            raise InputError(f"{self.path}: its study does not match {SPEC_FILE}: {problem}")
        return study

    def side_study(self, kind: str, *, direction: str | None = None) -> optuna.Study | None:
        """The run's ``<study>.<kind>`` study (:func:`side_study_name`) in its storage.

        With ``direction`` (the writers): created on first use, and linked to the
        search's study by its ``search_study`` attribute. Without (the readers):
        None while it does not exist.
        """
        import optuna

        storage, name = self.study_ref()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        full = side_study_name(name, kind)
        if direction is None:
            try:
                return optuna.load_study(study_name=full, storage=open_storage(storage))
            except KeyError:
                return None
        study = optuna.create_study(
            storage=open_storage(storage), study_name=full, direction=direction, load_if_exists=True
        )
        if study.user_attrs.get("search_study") != name:
            study.set_user_attr("search_study", name)
        return study

    # -- results ---------------------------------------------------------
    def baselines(self) -> dict[str, dict[str, float]]:
        """The probes on what every trial should beat, by baseline: ``random_init`` (the
        encoder at initialisation) and ``raw_input`` (the pixels). Empty when not
        measured; a run from before the raw-input baseline has ``random_init`` only."""
        try:
            found = json.loads((self.path / BASELINE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(found, dict):
            return {}
        if found and all(isinstance(v, int | float) for v in found.values()):
            return {"random_init": found}  # the older, random-init-only record
        return {k: v for k, v in found.items() if isinstance(v, dict)}

    def write_baselines(self, baselines: dict[str, dict[str, float]]) -> None:
        write_text_atomic(self.path / BASELINE_FILE, json.dumps(baselines, indent=2))

    def metrics(self) -> dict[str, dict[str, Any]]:
        """The probe metrics the run's trials report: direction, labels, headline, probe.

        Recorded at the start of a run of the built-in trainable; for a run
        without the record, the registries' own (their torch-free snapshot).
        """
        try:
            return json.loads((self.path / METRICS_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return shipped().metrics()

    def direction(self, metric: str) -> str | None:
        """The direction in which a reported ``metric`` is better: the loop's own
        (``loss`` and ``loss_<term>`` are minimised), else the probes' (the study's
        objectives carry their own direction: ask the study for those).

        None for a value that is not a score (``epoch``, ``lr``) and for a metric
        nothing declares (a custom trainable's own): its best is not defined.
        """
        try:
            return metric_direction(metric, self.metrics())
        except KeyError:
            return None

    def write_metrics(self, metrics: dict[str, dict[str, Any]]) -> None:
        write_text_atomic(self.path / METRICS_FILE, json.dumps(metrics, indent=2))

    def result_files(self) -> list[str]:
        """Every trial's ``result.json`` of every Tune experiment of the run, in session order."""
        return result_files(self.experiments_root(), experiment=TUNE_DIR)

    def confirm_result_files(self) -> list[str]:
        """Every long run's ``result.json`` of every confirm session, in session order."""
        return result_files(self.experiments_root(), experiment=CONFIRM_DIR)

    def trial_location(self, experiment: str, tune_trial_id: str) -> str:
        """Where Tune keeps one trial's directory (a path or a URI)."""
        return join(self.experiments_root(), experiment, f"trial_{tune_trial_id}")
