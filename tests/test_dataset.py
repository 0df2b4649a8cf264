"""search.dataset: the data decoded before any trial; `spaces check` refusing what run would."""

from __future__ import annotations

import pytest

from search.dataset import builtin_dataset, check_data, needs_decoding
from spaces import SpecError, load_spec


def _space(tmp_path, data: str):
    path = tmp_path / "s.yaml"
    path.write_text(
        "budget: {trials: 2, epochs: 1}\n"
        f"data: {data}\n"
        "model: {name: vit_tiny_32}\n"
        "params:\n"
        "  mask/ratio: {type: float, low: 0.25, high: 0.75, step: 0.25}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("make", "data", "expected"),
    [
        (lambda root: root.mkdir(), "image_folder", ":2 data/options/path: {root} has no"),
        (
            lambda root: (root / "a").mkdir(parents=True),
            "image_folder",
            ":2 data/options/path: {root}: the class folders hold no images",
        ),
        (  # a rule between two options, which the registry's limits cannot state
            lambda root: None,
            "shapes, options: {hue_range: 0.5, count: 10}",
            ":2 data/options: shapes: hue_range must be in (0, 1], and 1 unless label is colour",
        ),
    ],
)
def test_data_that_cannot_be_read_is_refused_at_its_line(tmp_path, make, data, expected):
    root = tmp_path / "images"
    make(root)
    if data == "image_folder":
        data = f"{{name: image_folder, options: {{path: {root}}}}}"
    path = _space(tmp_path, data if data.startswith("{") else f"{{name: {data}}}")
    spec = load_spec(path)  # each option is within its limits
    assert needs_decoding(spec)
    with pytest.raises(SpecError) as info:
        check_data(spec)
    [line] = info.value.lines()
    assert line.startswith(f"{path}" + expected.format(root=root)), line


def test_a_data_problem_is_located_at_the_override_that_gave_the_key(tmp_path):
    # an image folder given by --set: the path is the override's
    path = _space(tmp_path, "{name: shapes, options: {count: 10}}")
    (tmp_path / "images").mkdir()
    spec = load_spec(
        path,
        overrides={"data.name": "image_folder", "data.options": {"path": str(tmp_path / "images")}},
    )
    with pytest.raises(SpecError) as info:
        check_data(spec)
    assert info.value.lines() == [
        f"{path} (override) data/options/path: {tmp_path / 'images'} has no class sub-folders"
    ]
    # a source's rule between options names the options, not one of them: at their mapping
    spec = load_spec(path, overrides={"data.options.hue_range": 0.5})
    with pytest.raises(SpecError) as info:
        check_data(spec)
    assert info.value.lines()[0].startswith(f"{path}:2 data/options: shapes: hue_range must")


def test_sound_data_is_decoded_once_and_data_without_options_not_at_all(tmp_path):
    spec = load_spec(_space(tmp_path, "{name: shapes, options: {count: 10, image_size: 8}}"))
    check_data(spec)  # no error
    base, dataset = builtin_dataset(spec)
    assert base.data.options == {"count": 10, "image_size": 8}
    assert len(dataset.train_x) + len(dataset.val_x) == 10
    assert not needs_decoding(load_spec(_space(tmp_path, "{name: digits}")))
    (tmp_path / "none.yaml").write_text("budget: {trials: 2}\n", encoding="utf-8")
    assert not needs_decoding(load_spec(tmp_path / "none.yaml"))  # no data section at all


def test_a_relative_data_path_is_recorded_absolute_for_resume_from_elsewhere(tmp_path, monkeypatch):
    import numpy as np

    from search.dataset import absolute_data_path

    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    images = (rng.random((40, 8, 8)) * 255).astype("uint8")
    np.savez(data / "d.npz", images=images, labels=rng.integers(0, 3, 40))
    monkeypatch.chdir(tmp_path)  # the path is taken from where run starts
    spec = load_spec(_space(tmp_path, "{name: npz, options: {path: data/d.npz}}"))
    recorded = absolute_data_path(spec)
    assert recorded.base["data"]["options"]["path"] == str((data / "d.npz").resolve())
    assert spec.base["data"]["options"]["path"] == "data/d.npz"  # the spec as given is kept
    monkeypatch.chdir(data)  # from elsewhere the recorded path still decodes
    _, dataset = builtin_dataset(recorded)
    assert len(dataset.train_x) + len(dataset.val_x) == 40
    assert absolute_data_path(recorded) is recorded  # an absolute path: as it is


def test_confirm_s_data_path_override_is_kept_absolute(tmp_path, monkeypatch):
    from search.dataset import absolute_path_sets

    monkeypatch.chdir(tmp_path)
    sets = {"data.options.path": "big/d.npz", "budget.epochs": 40}
    assert absolute_path_sets(sets) == {
        "data.options.path": str((tmp_path / "big" / "d.npz").resolve()),
        "budget.epochs": 40,
    }
    assert sets["data.options.path"] == "big/d.npz"  # the given mapping is not changed
    kept = {"data.options.path": "/data/d.npz", "data.options.count": 9}
    assert absolute_path_sets(kept) == kept
    # the path inside a mapping given whole, at any level above it
    absolute = str((tmp_path / "d.npz").resolve())
    whole = {
        "data.options": {"path": "d.npz", "labels_key": None},
        "data": {"name": "npz", "options": {"path": "d.npz"}},
    }
    assert absolute_path_sets(whole) == {
        "data.options": {"path": absolute, "labels_key": None},
        "data": {"name": "npz", "options": {"path": absolute}},
    }
    assert whole["data.options"]["path"] == "d.npz"


def test_what_only_the_decoded_data_shows_is_refused_at_its_line(tmp_path):
    import numpy as np

    images = np.zeros((12, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "one.npz", images=images, labels=np.zeros(12, dtype=np.int64))
    np.savez(tmp_path / "ten.npz", images=images, labels=np.arange(12) % 3)
    path = tmp_path / "s.yaml"
    for data, extra, expected in (
        ("one", "", [":3 probe/names: probe 'knn' tells classes apart"]),
        (  # the k a parameter reaches, at the parameter (9 training images)
            "ten",
            "  probe/knn/k: {type: int, low: 2, high: 10}\n",
            [":6 params/probe/knn/k: 10 neighbours, but data 'npz' holds 9 training images"],
        ),
    ):
        path.write_text(
            "budget: {trials: 2, epochs: 1}\n"
            f"data: {{name: npz, options: {{path: {tmp_path / data}.npz}}}}\n"
            "probe: {names: [knn]}\n"
            "params:\n"
            "  mask/ratio: {type: float, low: 0.25, high: 0.75, step: 0.25}\n" + extra,
            encoding="utf-8",
        )
        spec = load_spec(path)  # the registries alone cannot know: the file must be read
        with pytest.raises(SpecError) as info:
            check_data(spec)
        lines = [line.removeprefix(str(path)) for line in info.value.lines()]
        assert [line[: len(e)] for line, e in zip(lines, expected, strict=True)] == expected
