"""Data sources: a registry of loaders that return uint8 image tensors and labels.

Contract: ``(**options) -> (images uint8 [N, C, H, W], labels int64 [N] | None)``.
:func:`load_dataset` splits the result into a train set (the SSL training
images and the probe's memory bank) and a held-out val set (the probe's
queries) with a fixed seed. Nothing is ever downloaded.

A source may declare ``geometry={"image_size": ..., "channels": ...}``, each a
number or the name of the option that sets it: validation then checks the
encoder's patch size against the images before any trial starts.
"""

from __future__ import annotations

import colorsys
import io
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables._registry import Registry
from trainables.config import ConfigError, DataConfig

__all__ = [
    "DATA_SOURCES",
    "SHAPES",
    "Dataset",
    "class_indices",
    "load_dataset",
    "register_data_source",
]

DataSourceFn = Callable[..., tuple[torch.Tensor, torch.Tensor | None]]
DATA_SOURCES: Registry[DataSourceFn] = Registry("data source")
register_data_source = DATA_SOURCES.register


@dataclass(frozen=True)
class Dataset:
    """A split dataset of uint8 images, the unit shared by all trials on a node.

    Attributes:
        train_x: uint8 ``[N, C, H, W]`` training images.
        train_y: int64 ``[N]`` labels, or ``None`` for unlabelled data.
        val_x: uint8 held-out images (probe queries).
        val_y: int64 labels of ``val_x`` or ``None``.
        name: data source name.
        config: the settings it was loaded with.
    """

    train_x: torch.Tensor
    train_y: torch.Tensor | None
    val_x: torch.Tensor
    val_y: torch.Tensor | None
    name: str
    config: DataConfig | None = None

    @property
    def channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def num_classes(self) -> int:
        if self.train_y is None:
            return 0
        return int(torch.cat([self.train_y, self.val_y]).max().item()) + 1

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and std of the training images in [0, 1]."""
        x = self.train_x.float().div_(255.0)
        return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-3)


@register_data_source("digits", geometry={"image_size": 8, "channels": 1}, count=1797)
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(bunch.target).long()


#: The classes of the ``shapes`` source, in label order.
SHAPES = ("circle", "square", "triangle", "star", "cross")


def _polygon_inside(px: np.ndarray, py: np.ndarray, vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
    """Even-odd rule: which pixels ``(px, py)`` lie inside the polygon ``(vx, vy)``."""
    inside = np.zeros(px.shape, dtype=bool)
    j = len(vx) - 1
    for i in range(len(vx)):
        crosses = (vy[i] > py) != (vy[j] > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = (vx[j] - vx[i]) * (py - vy[i]) / (vy[j] - vy[i]) + vx[i]
        inside ^= crosses & (px < x_at)
        j = i
    return inside


def _shape_mask(kind: str, size: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    if kind == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= r**2
    if kind == "cross":
        u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
        v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
        arm = r * 0.35
        return ((np.abs(u) <= r) & (np.abs(v) <= arm)) | ((np.abs(v) <= r) & (np.abs(u) <= arm))
    if kind == "square":
        corners = [angle + np.pi / 4 + k * np.pi / 2 for k in range(4)]
        radii = [r * 1.2] * 4
    elif kind == "triangle":
        corners = [angle - np.pi / 2 + k * 2 * np.pi / 3 for k in range(3)]
        radii = [r * 1.25] * 3
    else:  # star
        corners = [angle - np.pi / 2 + k * np.pi / 5 for k in range(10)]
        radii = [r * 1.3 if k % 2 == 0 else r * 0.55 for k in range(10)]
    vx = np.array([cx + q * np.cos(a) for q, a in zip(radii, corners, strict=True)])
    vy = np.array([cy + q * np.sin(a) for q, a in zip(radii, corners, strict=True)])
    return _polygon_inside(xs, ys, vx, vy)


@register_data_source(
    "shapes",
    geometry={"image_size": "image_size", "channels": 3},
    count="count",  # how many images: this option says
    limits={
        "count": "[10, 1000000]",  # enough to hold out a probe set; bounded memory
        "image_size": "[8, 512]",
        "classes": "[2, 5]",
        "hue_spread": "(0, 1]",
        "hue_range": "(0, 1]",
        "seed": "[0, inf)",
        "label": ["shape", "colour"],
        "background_hue": ["same", "any"],
    },
)
def shapes(
    *,
    count: int = 2000,
    image_size: int = 32,
    classes: int = 5,
    hue_spread: float = 0.7,
    hue_range: float = 1.0,
    rotate: bool = False,
    label: str = "shape",
    background_hue: str = "same",
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generated shapes with planted truth: the label is the shape (or the colour).

    The nuisances are drawn at random and independent of the label: the colour
    (one hue and saturation per image, the shape darker than the background),
    the position and the scale (radius 25-38 % of the side). A representation
    that keys on colour is wrong by construction, and the colour nuisance is
    what SimCLR's colour distortion randomises: hues span ``hue_spread`` of the
    circle (0.7: more than the +-0.2 hue shift of strength 1 can hide, so the
    weaker the jitter, the more the colour tells images apart), saturation and
    brightness vary within what its saturation, brightness and contrast factors
    span. Without grayscale, only colour jitter can hide the colour.

    ``label: colour`` plants the opposite truth: the label is the shape's hue;
    the shape (any of the five), its position and scale are nuisances. Class
    ``k``'s hues are centred on ``(k + 1/2) / classes`` of the circle and fill
    ``hue_spread`` of each class's share (1: neighbouring classes meet; 0.3:
    wide gaps, an easier task); ``hue_range`` packs the classes into that share
    of the circle (0.25 with 5 classes: 0.05 of hue per class, so the +-0.2 hue
    shift of strength 1 crosses several classes and the +-0.0125 of strength
    1/16 stays within one). With ``background_hue: any`` the background's
    hue is drawn at random, a nuisance too (with ``same`` it is the shape's, and
    the whole image shows the class). Strong colour jitter (a hue shift up to
    +-0.2 at strength 1) moves the shape's hue across classes, so weak jitter
    should win; solarize (which inverts channels above 0.5) leaves the dark
    shape alone.

    Args:
        count: number of images (balanced over the classes).
        image_size: side in pixels.
        classes: how many of circle, square, triangle, star, cross to use (2..5);
            with ``label: colour``, how many hue classes.
        hue_spread: fraction of the hue circle the images' hues are drawn from (0..1].
        hue_range: with ``label: colour``, the share of the hue circle the classes
            fill (0..1]; must stay 1 with ``label: shape``.
        rotate: also rotate each shape at random (a nuisance no augmentation op undoes).
        label: ``shape`` (colour is a nuisance) or ``colour`` (the shape is one).
        background_hue: ``same`` (the shape's hue) or ``any`` (drawn at random).
        seed: generator seed.

    Example:
        >>> x, y = shapes(count=10, image_size=16)
        >>> tuple(x.shape), y.tolist()[:5]
        ((10, 3, 16, 16), [4, 1, 2, 2, 3])
    """
    if not 2 <= classes <= len(SHAPES):
        raise ValueError(f"classes must be in 2..{len(SHAPES)}, got {classes}")
    if image_size < 8:
        raise ValueError(f"image_size must be >= 8, got {image_size}")
    if not 0 < hue_spread <= 1:
        raise ValueError(f"hue_spread must be in (0, 1], got {hue_spread}")
    if label not in ("shape", "colour"):
        raise ValueError(f"label must be shape or colour, got {label!r}")
    if not 0 < hue_range <= 1 or (label == "shape" and hue_range != 1):
        raise ValueError(
            f"hue_range must be in (0, 1], and 1 unless label is colour; got {hue_range}"
        )
    if background_hue not in ("same", "any"):
        raise ValueError(f"background_hue must be same or any, got {background_hue!r}")
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % classes
    rng.shuffle(labels)
    images = np.empty((count, 3, image_size, image_size), dtype=np.uint8)
    for i, k in enumerate(labels):
        if label == "shape":
            kind, hue = SHAPES[k], rng.uniform(0.0, hue_spread)
        else:  # the class's hue, on a shape of any kind
            kind = SHAPES[rng.integers(len(SHAPES))]
            hue = hue_range * (k + 0.5 + hue_spread * rng.uniform(-0.5, 0.5)) / classes
        bg_hue = hue if background_hue == "same" else rng.uniform(0.0, 1.0)
        saturation = rng.uniform(0.4, 1.0)
        shape_value, background_value = rng.uniform(0.1, 0.4), rng.uniform(0.65, 1.0)
        foreground = np.array(colorsys.hsv_to_rgb(hue, saturation, shape_value))
        background = np.array(colorsys.hsv_to_rgb(bg_hue, saturation, background_value))
        # at most (size - 2) / 2: the centre's range below is never empty (8 pixels: r <= 3)
        r = min(rng.uniform(0.25, 0.38) * image_size, (image_size - 2) / 2)
        cx, cy = rng.uniform(r + 1, image_size - r - 1, size=2)
        angle = rng.uniform(0, 2 * np.pi)  # drawn either way: rotate changes only the turn
        mask = _shape_mask(kind, image_size, cx, cy, r, angle if rotate else 0.0)
        canvas = np.where(mask[None], foreground[:, None, None], background[:, None, None])
        images[i] = np.round(canvas * 255).astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(labels).long()


def _require(path: str | Path, key: str = "data/options/path") -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise ConfigError(key, f"no such file or directory: {p}")
    return p


def _decode(blob: bytes | Path, image_size: int, channels: int) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(blob) if isinstance(blob, bytes) else blob) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        im = im.resize((image_size, image_size), Image.Resampling.BILINEAR)
        arr = np.asarray(im, dtype=np.uint8)
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def _decode_all(
    items: list[tuple[str, bytes | Path]], *, image_size: int, channels: int, on_error: str
) -> tuple[np.ndarray, list[int]]:
    """Decode every item; report unreadable ones by name, then skip or fail."""
    if on_error not in ("fail", "skip"):
        raise ConfigError("data/options/on_error", f"expected fail or skip, got {on_error!r}")
    arrays, kept, bad = [], [], []
    for i, (name, blob) in enumerate(items):
        try:
            arrays.append(_decode(blob, image_size, channels))
            kept.append(i)
        except Exception as err:  # PIL raises many types for broken files
            bad.append(f"{name} ({type(err).__name__})")
    if bad:
        listing = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        message = f"{len(bad)} of {len(items)} images could not be read: {listing}"
        if on_error == "fail" or not arrays:
            raise ConfigError("data/options", message + " (set on_error: skip to skip them)")
        warnings.warn(f"skipping {message}", stacklevel=2)
    if not arrays:
        raise ConfigError("data/options/path", "no images found")
    return np.stack(arrays), kept


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@register_data_source(
    "image_folder",
    geometry={"image_size": "image_size", "channels": "channels"},
    limits={"image_size": "[4, 1024]", "channels": (1, 3), "on_error": ("fail", "skip")},
)
def image_folder(
    *, path: str, image_size: int = 32, channels: int = 3, on_error: str = "fail"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in class sub-folders (``path/<class>/<image>``), decoded once and resized.

    Labels are the sub-folder names in sorted order. ``on_error``: ``fail``
    (default) or ``skip`` unreadable images; either way they are named.
    """
    root = _require(path)
    if not root.is_dir():
        raise ConfigError("data/options/path", f"{root} is not a directory")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise ConfigError("data/options/path", f"{root} has no class sub-folders")
    items, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((root / name).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                items.append((str(file.relative_to(root)), file))
                labels.append(label)
    if not items:
        raise ConfigError("data/options/path", f"{root}: the class folders hold no images")
    images, kept = _decode_all(items, image_size=image_size, channels=channels, on_error=on_error)
    return torch.from_numpy(images), torch.tensor([labels[i] for i in kept], dtype=torch.long)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: never runs other code."""

    ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}")


@register_data_source("cifar", geometry={"image_size": 32, "channels": 3})
def cifar(*, path: str, files: str = "*_batch*") -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-style pickled batches (``data_batch_1`` ... ``test_batch``) in ``path``.

    Each batch is a dict with ``data`` (``N x 3072`` uint8, channel-major 32x32)
    and ``labels`` (or ``fine_labels``). Unpickled with an allow-list: only
    NumPy arrays and plain containers, never arbitrary objects.
    """
    root = _require(path)
    batches = sorted(root.glob(files)) if root.is_dir() else [root]
    if not batches:
        raise ConfigError("data/options/path", f"{root}: no files match {files!r}")
    images, labels = [], []
    for batch in batches:
        try:
            with batch.open("rb") as f:
                content = _ArraysOnlyUnpickler(f, encoding="bytes").load()
        except (pickle.UnpicklingError, EOFError, OSError, ValueError) as err:
            raise ConfigError("data/options/path", f"{batch}: not a CIFAR batch ({err})") from None
        content = {k.decode() if isinstance(k, bytes) else k: v for k, v in content.items()}
        data = np.asarray(content.get("data"))
        y = content.get("labels", content.get("fine_labels"))
        if data.ndim != 2 or data.shape[1] % 3 or y is None:
            raise ConfigError("data/options/path", f"{batch}: expected 'data' N x 3*H*W and labels")
        if len(y) != len(data):
            raise ConfigError(
                "data/options/path", f"{batch}: {len(y)} labels for {len(data)} images"
            )
        side = round((data.shape[1] // 3) ** 0.5)
        images.append(data.reshape(-1, 3, side, side).astype(np.uint8))
        labels.append(np.asarray(y, dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


@register_data_source(
    "parquet",
    geometry={"image_size": "image_size", "channels": "channels"},
    limits={"image_size": "[4, 1024]", "channels": (1, 3), "on_error": ("fail", "skip")},
)
def parquet(
    *,
    path: str,
    image_column: str = "image",
    label_column: str | None = "label",
    image_size: int = 32,
    channels: int = 3,
    on_error: str = "fail",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A Parquet table with encoded image bytes (PNG, JPEG, ...) and labels.

    The image column holds bytes, or structs with a ``bytes`` field (the
    Hugging Face layout). String labels are mapped to indices in sorted order;
    ``label_column: null`` loads unlabelled data.
    """
    import pyarrow.parquet as pq

    table = pq.read_table(_require(path))
    for column in (image_column, label_column):
        if column is not None and column not in table.column_names:
            raise ConfigError(
                "data/options",
                f"{path}: no column '{column}'; columns: {', '.join(table.column_names)}",
            )
    items = []
    for i, cell in enumerate(table.column(image_column).to_pylist()):
        blob = cell.get("bytes") if isinstance(cell, dict) else cell
        items.append((f"row {i}", blob if isinstance(blob, bytes) else b""))
    images, kept = _decode_all(items, image_size=image_size, channels=channels, on_error=on_error)
    if label_column is None:
        return torch.from_numpy(images), None
    raw = table.column(label_column).to_pylist()
    if any(v is None for v in raw):
        raise ConfigError("data/options/label_column", f"{path}: '{label_column}' has nulls")
    if all(isinstance(v, int) for v in raw):
        labels = raw
    else:
        index = {v: k for k, v in enumerate(sorted(set(map(str, raw))))}
        labels = [index[str(v)] for v in raw]
    return torch.from_numpy(images), torch.tensor([labels[i] for i in kept], dtype=torch.long)


@register_data_source("npz")
def npz(
    *, path: str, images_key: str = "images", labels_key: str | None = "labels"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A ``.npz`` with uint8 images ``[N, H, W]``, ``[N, H, W, C]`` or ``[N, C, H, W]``.

    Loaded with ``allow_pickle=False``.
    """
    try:
        archive = np.load(_require(path), allow_pickle=False)
    except ValueError as err:
        raise ConfigError("data/options/path", f"{path}: {err}") from None
    for key in (images_key, labels_key):
        if key is not None and key not in archive.files:
            raise ConfigError(
                "data/options", f"{path}: no array '{key}'; arrays: {', '.join(archive.files)}"
            )
    images = archive[images_key]
    if images.dtype != np.uint8:
        raise ConfigError("data/options/images_key", f"{path}: expected uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.transpose(0, 3, 1, 2)
    if images.ndim != 4:
        raise ConfigError("data/options/images_key", f"{path}: expected 3 or 4 dimensions")
    if labels_key is None:
        return torch.from_numpy(np.ascontiguousarray(images)), None
    images = torch.from_numpy(np.ascontiguousarray(images))
    return images, _npz_labels(archive[labels_key], len(images), path)


def _npz_labels(labels: np.ndarray, count: int, path: str) -> torch.Tensor:
    key = "data/options/labels_key"
    if labels.ndim != 1:
        raise ConfigError(
            key,
            f"{path}: expected one label per image, an array of shape ({count},); "
            f"got shape {labels.shape}",
        )
    if len(labels) != count:
        raise ConfigError(key, f"{path}: {len(labels)} labels for {count} images")
    if labels.dtype.kind in "US":  # class names: their sorted order numbers them
        labels = np.unique(labels, return_inverse=True)[1].reshape(-1)
    elif labels.dtype.kind not in "biuf":
        raise ConfigError(key, f"{path}: expected integer or string labels, got {labels.dtype}")
    return class_indices(torch.from_numpy(labels), key, path)


def class_indices(labels: torch.Tensor, key: str = "data/name", source: str = "") -> torch.Tensor:
    """Labels as class indices ``0 .. C-1``: the distinct values in sorted order
    (any integers: negative, sparse), so a probe's classes are the classes there are.

    Raises:
        ConfigError: at ``key``: the labels are not one per image or not integral.

    Example:
        >>> class_indices(torch.tensor([-1, 7, 7, 1000]))
        tensor([0, 1, 1, 2])
    """
    where = f"{source}: " if source else ""
    if labels.ndim != 1:
        raise ConfigError(
            key, f"{where}expected one label per image, got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() and not bool((labels == labels.round()).all()):
        raise ConfigError(key, f"{where}labels must name classes (integers); got fractions or NaN")
    if labels.is_complex():
        raise ConfigError(key, f"{where}labels must name classes (integers), got {labels.dtype}")
    return torch.unique(labels, return_inverse=True)[1].long()


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load a data source and split it into train and val with ``cfg.seed``.

    Example:
        >>> ds = load_dataset(DataConfig(name="digits"))
        >>> tuple(ds.train_x.shape), ds.train_x.dtype, ds.num_classes
        ((1348, 1, 8, 8), torch.uint8, 10)
    """
    source = DATA_SOURCES.lookup(cfg.name)
    try:
        images, labels = source(**dict(cfg.options))
    except TypeError as err:
        raise ConfigError("data/options", f"{cfg.name}: {err}") from None
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError("data/options", f"{cfg.name}: {err}") from None
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ConfigError("data/name", f"{cfg.name} must return uint8 [N, C, H, W] images")
    if labels is not None and len(labels) != len(images):
        raise ConfigError("data/name", f"{cfg.name}: {len(labels)} labels for {len(images)} images")
    if labels is not None:
        labels = class_indices(labels, "data/name", cfg.name)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError("data/val_fraction", f"expected in (0, 1), got {cfg.val_fraction}")
    n = len(images)
    n_train, n_val = cfg.split(n)
    if n_train < 1:
        key = "data/val_fraction" if n > 1 else ("data/options" if cfg.options else "data/name")
        raise ConfigError(
            key,
            f"{cfg.name}: {n} images; val_fraction {cfg.val_fraction} holds out all of them"
            if n > 1
            else f"{cfg.name}: {n} image{'' if n == 1 else 's'}; at least 2 are needed, "
            "one to train on and one to hold out for the probes",
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed))
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    return Dataset(
        train_x=images[train_idx].contiguous(),
        train_y=None if labels is None else labels[train_idx].contiguous(),
        val_x=images[val_idx].contiguous(),
        val_y=None if labels is None else labels[val_idx].contiguous(),
        name=cfg.name,
        config=cfg,
    )
