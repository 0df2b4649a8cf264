"""Data sources: every format built here on the fly, and their errors."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from trainables import ConfigError
from trainables.config import DataConfig
from trainables.data import DATA_SOURCES, SHAPES, class_indices, load_dataset, shapes


def png_bytes(color, size=(10, 12)):
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def load(name, **options):
    return load_dataset(DataConfig(name=name, options=options, val_fraction=0.25))


def test_every_source_is_covered_here():
    assert set(DATA_SOURCES) == {"digits", "shapes", "image_folder", "cifar", "parquet", "npz"}


def test_shapes_labels_are_balanced_and_nuisances_vary():
    x, y = shapes(count=100, image_size=16, seed=1)
    assert x.dtype == torch.uint8 and x.shape == (100, 3, 16, 16)
    assert torch.bincount(y).tolist() == [20] * len(SHAPES)
    backgrounds = x[:, :, 0, 0].float()  # corners are background (shapes stay inside)
    assert backgrounds.std(dim=0).min() > 30  # background colour varies a lot (std 37-66)
    again, _ = shapes(count=100, image_size=16, seed=1)
    assert torch.equal(x, again)


@pytest.mark.parametrize("size", [8, 9, 10])
def test_shapes_are_drawn_at_the_smallest_sizes(size):
    # 8 is the smallest size the limits allow: a radius of 0.38 x 8 left no room for the centre
    x, y = shapes(count=200, image_size=size, seed=0)
    assert x.shape == (200, 3, size, size) and torch.bincount(y).tolist() == [40] * 5
    pixels = x.flatten(2)  # every image shows a shape on its background: two colours
    assert all(len(torch.unique(p, dim=1).T) >= 2 for p in pixels)


def test_shapes_nuisances_do_not_depend_on_the_label():
    x, y = shapes(count=1000, image_size=24, seed=0)
    background = x[:, :, 0, 0].float()  # corners are background
    fg_mask = (x != x[:, :, :1, :1]).any(dim=1)  # pixels of the shape
    area = fg_mask.float().mean(dim=(1, 2))
    rows = torch.arange(24).float().view(1, 24, 1)
    centre_y = (fg_mask * rows).sum(dim=(1, 2)) / fg_mask.sum(dim=(1, 2))
    for label in range(len(SHAPES)):
        sel = y == label
        # colour and position are independent of the class (uniform 0..255: mean ~127)
        assert (background[sel].mean(dim=0) - background.mean(dim=0)).abs().max() < 20
        assert abs(centre_y[sel].mean() - centre_y.mean()) < 1.5
        assert area[sel].min() > 0.02  # every shape is visible


def test_shapes_colour_nuisance_is_one_hue_within_jitters_reach():
    import colorsys

    for spread in (0.4, 0.1):
        x, _ = shapes(count=200, image_size=16, hue_spread=spread, seed=2)
        hues = []
        for image in x.float().div(255):
            background = image[:, 0, 0]
            inside = (image != background[:, None, None]).any(dim=0)
            foreground = image[:, inside][:, 0]
            (h_bg, s_bg, v_bg), (h_fg, s_fg, v_fg) = (
                colorsys.rgb_to_hsv(*c.tolist()) for c in (background, foreground)
            )
            hue_gap = abs(h_bg - h_fg)
            assert min(hue_gap, 1 - hue_gap) < 0.02 and abs(s_bg - s_fg) < 0.03
            assert v_bg - v_fg > 0.24  # the shape is darker: values 0.1-0.4 and 0.65-1.0
            hues.append(h_bg)
        # hues fill the band [0, spread) of the circle, and nothing outside it
        assert max(hues) < spread + 0.01 and max(hues) > 0.9 * spread and min(hues) < 0.1 * spread
    with pytest.raises(ValueError, match="hue_spread"):
        shapes(count=10, hue_spread=0.0)


def test_shapes_with_the_colour_as_label_plant_the_opposite_truth():
    import colorsys

    classes, spread = 4, 0.5
    x, y = shapes(
        count=400,
        image_size=16,
        classes=classes,
        hue_spread=spread,
        label="colour",
        background_hue="any",
    )
    assert torch.bincount(y).tolist() == [100] * classes
    kinds, background_hues = set(), []
    for image, k in zip(x.float().div(255), y.tolist(), strict=True):
        background = image[:, 0, 0]
        inside = (image != background[:, None, None]).any(dim=0)
        foreground = image[:, inside][:, 0]
        h_fg, _, v_fg = colorsys.rgb_to_hsv(*foreground.tolist())
        h_bg, _, v_bg = colorsys.rgb_to_hsv(*background.tolist())
        # the (dark) shape's hue is in the class's band: centre (k + 1/2)/4, half-width 1/16
        assert abs(h_fg - (k + 0.5) / classes) <= spread / classes / 2 + 0.01
        assert v_bg - v_fg > 0.24
        kinds.add(int(inside.sum()))
        background_hues.append((k, h_bg))
    # the background's hue is a nuisance: spread over the circle in every class
    for k in range(classes):
        hues = [h for c, h in background_hues if c == k]
        assert min(hues) < 0.15 and max(hues) > 0.85
    assert len(kinds) > 20  # shapes and sizes vary
    with pytest.raises(ValueError, match="label"):
        shapes(count=10, label="size")
    # with the background in the class's hue too, the whole image shows the class
    x, y = shapes(count=50, image_size=16, classes=classes, hue_spread=spread, label="colour")
    for image, k in zip(x.float().div(255), y.tolist(), strict=True):
        h_bg, _, _ = colorsys.rgb_to_hsv(*image[:, 0, 0].tolist())
        assert abs(h_bg - (k + 0.5) / classes) <= spread / classes / 2 + 0.01


def test_shapes_hue_range_packs_the_colour_classes_into_an_arc():
    import colorsys

    classes, spread, arc = 5, 0.7, 0.25
    x, y = shapes(
        count=200, image_size=16, classes=classes, hue_spread=spread, hue_range=arc, label="colour"
    )
    hues = {k: [] for k in range(classes)}
    for image, k in zip(x.float().div(255), y.tolist(), strict=True):
        hues[k].append(colorsys.rgb_to_hsv(*image[:, 0, 0].tolist())[0])
    share = arc / classes  # 0.05 of the circle per class
    for k, hs in hues.items():
        centre = (k + 0.5) * share
        assert max(abs(h - centre) for h in hs) <= spread * share / 2 + 0.005
        assert max(hs) - min(hs) > 0.8 * spread * share  # the band is filled
    assert max(max(hs) for hs in hues.values()) < arc
    for bad, label in ((0.0, "colour"), (1.5, "colour"), (0.5, "shape")):
        with pytest.raises(ValueError, match="hue_range"):
            shapes(count=10, hue_range=bad, label=label)


def test_image_folder(tmp_path):
    for cls, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
        (tmp_path / cls).mkdir()
        for i in range(4):
            (tmp_path / cls / f"{i}.png").write_bytes(png_bytes(color))
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    ds = load("image_folder", path=str(tmp_path), image_size=8)
    x = torch.cat([ds.train_x, ds.val_x])
    y = torch.cat([ds.train_y, ds.val_y])
    assert x.shape == (8, 3, 8, 8) and ds.num_classes == 2
    assert (x[y == 0][:, 0] == 255).all() and (x[y == 1][:, 2] == 255).all()


def test_image_folder_unreadable_images_fail_or_skip_by_name(tmp_path):
    (tmp_path / "a").mkdir()
    for i in range(3):
        (tmp_path / "a" / f"{i}.png").write_bytes(png_bytes((1, 2, 3)))
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ConfigError, match=r"1 of 4 images could not be read: a/broken.png"):
        load("image_folder", path=str(tmp_path))
    with pytest.warns(UserWarning, match="a/broken.png"):
        ds = load("image_folder", path=str(tmp_path), on_error="skip")
    assert len(ds.train_x) + len(ds.val_x) == 3


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        (lambda p: None, "no such file or directory"),
        (lambda p: p.mkdir(), "has no class sub-folders"),
        (lambda p: (p / "empty").mkdir(parents=True), "hold no images"),
    ],
)
def test_image_folder_errors(tmp_path, setup, fragment):
    root = tmp_path / "data"
    setup(root)
    with pytest.raises(ConfigError, match=fragment) as info:
        load("image_folder", path=str(root))
    assert info.value.path == "data/options/path"


def write_cifar(path, n, seed=0, labels_key=b"labels"):
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n).tolist()
    with open(path, "wb") as f:
        pickle.dump({b"data": data, labels_key: labels, b"batch_label": b"x"}, f)
    return data, labels


def test_cifar_batches(tmp_path):
    d1, l1 = write_cifar(tmp_path / "data_batch_1", 6, 0)
    d2, l2 = write_cifar(tmp_path / "test_batch", 4, 1, labels_key=b"fine_labels")
    x, y = DATA_SOURCES["cifar"](path=str(tmp_path))
    assert x.shape == (10, 3, 32, 32)
    assert torch.equal(x[0].flatten(), torch.from_numpy(d1[0]))
    assert torch.equal(x[6].flatten(), torch.from_numpy(d2[0]))
    assert y.tolist() == l1 + l2


def test_cifar_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("touch pwned",))

    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": Evil(), b"labels": [0]}, f)
    with pytest.raises(ConfigError, match="refused to load"):
        DATA_SOURCES["cifar"](path=str(tmp_path))
    assert not (tmp_path / "pwned").exists()


def test_parquet_with_bytes_and_string_labels(tmp_path):
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 0)]
    table = pa.table(
        {
            "image": [{"bytes": png_bytes(c), "path": None} for c in colors],
            "label": ["red", "green", "blue", "red"],
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    x, y = DATA_SOURCES["parquet"](path=str(tmp_path / "d.parquet"), image_size=4)
    assert x.shape == (4, 3, 4, 4)
    assert y.tolist() == [2, 1, 0, 2]  # sorted: blue, green, red
    with pytest.raises(ConfigError, match="no column 'img'"):
        DATA_SOURCES["parquet"](path=str(tmp_path / "d.parquet"), image_column="img")


def test_npz_layouts_and_label_mismatch(tmp_path):
    hwc = np.zeros((5, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "a.npz", images=hwc, labels=np.arange(5))
    x, y = DATA_SOURCES["npz"](path=str(tmp_path / "a.npz"))
    assert x.shape == (5, 3, 6, 6) and y.tolist() == [0, 1, 2, 3, 4]
    np.savez(tmp_path / "b.npz", images=np.zeros((5, 6, 6), dtype=np.uint8), labels=np.arange(4))
    with pytest.raises(ConfigError, match="4 labels for 5 images") as info:
        load("npz", path=str(tmp_path / "b.npz"))
    assert info.value.path == "data/options/labels_key"
    np.savez(tmp_path / "c.npz", images=np.zeros((5, 6, 6), dtype=np.float32))
    with pytest.raises(ConfigError, match="expected uint8"):
        load("npz", path=str(tmp_path / "c.npz"), labels_key=None)


def test_labels_become_class_indices_in_sorted_order():
    assert class_indices(torch.tensor([5, -3, 5, 1_000_000])).tolist() == [1, 0, 1, 2]
    assert class_indices(torch.tensor([2.0, 0.0, 2.0])).tolist() == [1, 0, 1]  # integral floats
    for bad, fragment in (
        (torch.tensor([0.5, 1.0]), "fractions or NaN"),
        (torch.tensor([float("nan"), 1.0]), "fractions or NaN"),
        (torch.zeros(3, 2), "one label per image"),
    ):
        with pytest.raises(ConfigError, match=fragment) as info:
            class_indices(bad, "data/options/labels_key", "x.npz")
        assert info.value.path == "data/options/labels_key"


def test_npz_labels_of_any_names_and_wrong_shapes(tmp_path):
    images = np.zeros((6, 8, 8), dtype=np.uint8)
    cases = {
        "names": np.array(["cat", "dog", "ant"] * 2),  # classes in sorted order: ant cat dog
        "sparse": np.array([-7, 400, 9, -7, 400, 9]),
    }
    expected = {"names": [1, 2, 0, 1, 2, 0], "sparse": [0, 2, 1, 0, 2, 1]}
    for name, labels in cases.items():
        np.savez(tmp_path / f"{name}.npz", images=images, labels=labels)
        assert DATA_SOURCES["npz"](path=str(tmp_path / f"{name}.npz"))[1].tolist() == expected[name]
    ds = load("npz", path=str(tmp_path / "sparse.npz"))
    assert ds.num_classes == 3  # not 408: a probe's scores are one column per class
    for name, labels, fragment in (
        ("onehot", np.eye(3)[np.arange(6) % 3], r"one label per image, an array of shape \(6,\)"),
        ("fractions", np.arange(6) / 4, "fractions"),
    ):
        np.savez(tmp_path / f"{name}.npz", images=images, labels=labels)
        with pytest.raises(ConfigError, match=fragment) as info:
            load("npz", path=str(tmp_path / f"{name}.npz"))
        assert info.value.path == "data/options/labels_key"


@pytest.mark.parametrize(
    ("count", "val_fraction", "path", "fragment"),
    [
        (0, 0.25, "data/options", "0 images; at least 2 are needed"),
        (1, 0.25, "data/options", "1 image; at least 2 are needed"),
        (3, 0.9, "data/val_fraction", "3 images; val_fraction 0.9 holds out all of them"),
    ],
)
def test_data_that_leaves_nothing_to_train_on_is_refused(
    tmp_path, count, val_fraction, path, fragment
):
    np.savez(tmp_path / "d.npz", images=np.zeros((count, 8, 8), dtype=np.uint8))
    cfg = DataConfig(
        name="npz",
        val_fraction=val_fraction,
        options={"path": str(tmp_path / "d.npz"), "labels_key": None},
    )
    with pytest.raises(ConfigError, match=fragment) as info:
        load_dataset(cfg)
    assert info.value.path == path


def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="data/options"):
        load("digits", path="x")


def _closed_ends(limit: str) -> list[float]:
    """The finite ends an interval limit admits: '[8, 512]' -> [8, 512], '(0, 1]' -> [1]."""
    import re

    left, low, high, right = re.fullmatch(r"([\[(])(.+), (.+)([\])])", limit).groups()
    ends = [(low, left == "["), (high, right == "]")]
    return [float(v) for v, closed in ends if closed and v != "inf"]


def test_every_bound_the_shapes_limits_admit_the_source_draws():
    # spaces check admits exactly these limits: the source must draw at each closed end
    from trainables.catalogue import live

    limits = live().entry("data", "shapes").meta["limits"]
    for option, limit in limits.items():
        values = list(limit) if not isinstance(limit, str) else _closed_ends(limit)
        for value in values:
            if option in ("count", "image_size", "classes", "seed"):
                value = int(value)
            if (option == "count" and value > 100) or (option == "image_size" and value > 64):
                continue  # the upper ends cost memory, not correctness
            options = {"count": 10, option: value}
            if option == "hue_range":
                options["label"] = "colour"  # below 1 needs colour labels (its own rule)
            x, _ = shapes(**options)
            assert len(x) == options["count"], (option, value)
