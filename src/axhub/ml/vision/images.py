"""Reading image files into arrays, with errors that name the file."""

from __future__ import annotations

import functools
import hashlib
import os
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from axhub.core.errors import InputProblem, InputValidationError, problem
from axhub.core.pixels import to_uint8

# Korean factories name their folders 양품 (good part), 정상 (normal), 합격 (pass), 양호 (sound);
# the Chinese-character forms turn up in exports from Japanese and Chinese equipment.
GOOD_WORDS_KO = ("양품", "정상", "합격", "양호")
GOOD_WORDS_CJK = ("良品", "正常", "合格")
GOOD_LABELS = {"good", "ok", "normal", "pass", "0", "false", "negative", *GOOD_WORDS_KO, *GOOD_WORDS_CJK}
GOOD_PREFIXES = ("ok", "good", *GOOD_WORDS_KO, *GOOD_WORDS_CJK)  # ok_front, 양품_앞면


def is_good_label(label: Any) -> bool:
    if isinstance(label, bool | np.bool_):
        return not bool(label)
    if isinstance(label, int | float | np.integer | np.floating):
        return float(label) == 0.0
    # NFC: macOS writes Hangul folder names decomposed (NFD), so 양품 would not match as typed.
    text = unicodedata.normalize("NFC", str(label)).strip().lower()
    return text in GOOD_LABELS or text.startswith(GOOD_PREFIXES)


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm"}


def decode_image(data: bytes | Path, *, name: str | None = None) -> np.ndarray:
    """Decode and fully load an image: uint8 (H, W) for grayscale or (H, W, 3) for colour.

    Raises ``InputValidationError`` naming the file for anything that is not a complete image
    (wrong format, truncated data, zero size). ``Image.load()`` forces the full decode, so a
    truncated JPEG fails here rather than later inside a model.
    """
    import io

    from PIL import Image, UnidentifiedImageError

    label = name or (str(data) if isinstance(data, Path) else "<bytes>")
    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
            img.load()
            if img.width == 0 or img.height == 0:
                raise ValueError("image has zero size")
            arr = to_uint8(img)  # 16-bit camera images scaled, not clipped (core.pixels)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        # The reason without the path Pillow puts in it: the file is named once, as the user named it.
        reason = str(exc).replace(str(data), Path(str(data)).name) if isinstance(data, Path) else str(exc)
        raise InputValidationError(problem(label, None, None, "image_unreadable", reason=reason)) from exc
    return np.array(arr, dtype=np.uint8, copy=True)


def load_images(paths: Iterable[Path]) -> list[np.ndarray]:
    return [decode_image(Path(p)) for p in paths]


def image_hash(img: np.ndarray) -> str:
    """Content hash of decoded pixels (shape included), to recognise an image seen before."""
    arr = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    return hashlib.sha256(str(arr.shape).encode() + arr.tobytes()).hexdigest()


class ImageFile:
    """One image file, decoded each time it is read; its shape and hash are kept from the first
    read (a few bytes), so a training pass over many large images holds one batch of pixels."""

    __slots__ = ("name", "path", "sha256", "shape")

    def __init__(self, path: Path, name: str | None = None) -> None:
        self.path = Path(path)
        self.name = name  # what errors call the file (the user's name, never a server path)
        self.shape: tuple[int, ...] | None = None
        self.sha256: str | None = None

    def __call__(self) -> np.ndarray:
        img = decode_image(self.path, name=self.name)
        if self.sha256 is None:
            self.shape, self.sha256 = img.shape, image_hash(img)
        return img


class LazyImages(Sequence[np.ndarray]):
    """Images read from their files when indexed. Four hundred 1024 × 1024 colour photographs
    take 1.2 GB decoded; a model reads each a few times, one batch at a time, instead. A slice is
    a list of decoded images (one batch); ``pick`` and ``+`` give lazy sequences again."""

    def __init__(self, files: Sequence[ImageFile]) -> None:
        self.files = list(files)

    @classmethod
    def from_paths(cls, paths: Iterable[Path], names: Iterable[str | None] | None = None) -> LazyImages:
        paths = list(paths)
        return cls([ImageFile(Path(p), n) for p, n in zip(paths, names or [None] * len(paths), strict=True)])

    def __len__(self) -> int:
        return len(self.files)

    @overload
    def __getitem__(self, index: int) -> np.ndarray: ...
    @overload
    def __getitem__(self, index: slice) -> list[np.ndarray]: ...
    def __getitem__(self, index: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(index, slice):
            return [f() for f in self.files[index]]
        return self.files[index]()

    def pick(self, indices: Iterable[int]) -> LazyImages:
        return LazyImages([self.files[int(i)] for i in indices])

    def __add__(self, other: Sequence[np.ndarray]) -> LazyImages:
        if not isinstance(other, LazyImages):
            return NotImplemented
        return LazyImages(self.files + other.files)


def pick(images: Sequence[np.ndarray], indices: Iterable[int]) -> Sequence[np.ndarray]:
    """``images[i] for i in indices``, lazy when ``images`` is."""
    if isinstance(images, LazyImages):
        return images.pick(indices)
    return [images[int(i)] for i in indices]


def join(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> Sequence[np.ndarray]:
    """Two image sequences one after the other, lazy when both are."""
    if isinstance(first, LazyImages) and isinstance(second, LazyImages):
        return first + second
    return [*first, *second]


def image_facts(
    images: Sequence[np.ndarray], progress: Callable[[int, int], None] | None = None
) -> list[tuple[tuple[int, ...], str]]:
    """(shape, hash) of every image; a lazy sequence reads each file once, here, and keeps them
    (so unreadable files are reported before any training starts)."""
    out: list[tuple[tuple[int, ...], str]] = []
    for i in range(len(images)):
        if isinstance(images, LazyImages):
            file = images.files[i]
            if file.sha256 is None:
                file()
            assert file.shape is not None and file.sha256 is not None
            out.append((file.shape, file.sha256))
        else:
            img = np.asarray(images[i])
            out.append((img.shape, image_hash(img)))
        if progress is not None and (i + 1 == len(images) or (i + 1) % 16 == 0):
            progress(i + 1, len(images))
    return out


def as_image_list(images: Sequence[np.ndarray] | np.ndarray) -> Sequence[np.ndarray]:
    """Accept a list of arrays or one stacked array (N, H, W[, C]); check dtype and finiteness.
    A ``LazyImages`` stays lazy (its files are checked when decoded)."""
    if isinstance(images, LazyImages):
        if not len(images):
            raise InputValidationError(InputProblem("images", None, None, "no images given"))
        return images
    out = list(images) if not isinstance(images, np.ndarray) else [images[i] for i in range(len(images))]
    if not out:
        raise InputValidationError(InputProblem("images", None, None, "no images given"))
    for i, img in enumerate(out):
        arr = np.asarray(img)
        if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
            raise InputValidationError(
                InputProblem("images", i, "shape", f"expected (H, W) or (H, W, 1|3|4), got {arr.shape}")
            )
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise InputValidationError(InputProblem("images", i, "pixels", "contains NaN or infinite values"))
    return out


# -- dataset layouts: labels from folders, masks beside images or under ground_truth/ -------------
# Folders that hold images without naming a class (an image's label is the nearest other folder).
CONTAINER_FOLDERS = {"imgs", "img", "images", "image", "data", "train", "test", "val", "valid", "validation"}
MASK_FOLDERS = {"ground_truth", "groundtruth", "masks", "mask", "gt", "labels", "label"}
MASK_STEM_ENDINGS = ("_mask", "_label", "_gt", "_labels", "_masks")
MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")


# Magnetic-tile style: `Imgs/exp1_num_4894.jpg` beside its mask `Imgs/exp1_num_4894.png`. A mask
# is never stored as JPEG (lossy), so a lossless file sharing a JPEG's stem is that JPEG's mask.
JPEG_SUFFIXES = (".jpg", ".jpeg")
SAME_STEM_MASK_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")


def is_mask_path(path: Path, root: Path | None = None) -> bool:
    """A mask, never an image to learn from: a name ending ``_mask``/``_label``/``_gt``, a file
    under a ``ground_truth``/``masks`` folder (below ``root`` when given), or a PNG/BMP/TIFF
    sharing its stem with a JPEG beside it."""
    p = Path(path)
    parts = p.relative_to(root).parts[:-1] if root is not None and p.is_relative_to(root) else p.parts[:-1]
    if p.stem.lower().endswith(MASK_STEM_ENDINGS) or any(x.lower() in MASK_FOLDERS for x in parts):
        return True
    return (
        p.suffix.lower() in SAME_STEM_MASK_SUFFIXES
        and _mask_in(p.parent, p.stem, ("",), JPEG_SUFFIXES) is not None
    )


def list_images(folder: Path, *, masks: bool = False) -> list[Path]:
    """Image files under ``folder`` (recursive), sorted; mask files are left out unless ``masks``."""
    root = Path(folder)
    found = (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return sorted(p for p in found if masks or not is_mask_path(p, root))


@functools.lru_cache(maxsize=1024)
def _entries(folder: Path, modified: int) -> tuple[dict[str, Path], tuple[Path, ...]]:
    # One listing per folder, keyed on its modification time (a mask added later is seen): files
    # by lower-case name (DAGM writes `.PNG`, KolektorSDD `.bmp`), and the mask sub-folders.
    files: dict[str, Path] = {}
    masks: list[Path] = []
    with os.scandir(folder) as found:
        for entry in found:
            if entry.is_file():
                files.setdefault(entry.name.lower(), Path(entry.path))
            elif entry.is_dir() and entry.name.lower() in MASK_FOLDERS:
                masks.append(Path(entry.path))
    return files, tuple(sorted(masks))


def _listing(folder: Path) -> tuple[dict[str, Path], tuple[Path, ...]]:
    try:
        return _entries(folder, folder.stat().st_mtime_ns)
    except OSError:
        return {}, ()


def mask_folders(folder: Path) -> tuple[Path, ...]:
    """The sub-folders of ``folder`` that hold masks, whatever their case (VisA ships
    ``Data/Masks/``, MVTec AD ``ground_truth/``, DAGM 2007 ``Label/``)."""
    return _listing(folder)[1]


def _mask_in(
    folder: Path, stem: str, endings: Sequence[str], suffixes: Sequence[str] = MASK_SUFFIXES
) -> Path | None:
    """The first ``<stem><ending><suffix>`` file in ``folder``, names compared in lower case."""
    files = _listing(folder)[0]
    for ending in endings:
        for suffix in suffixes:
            found = files.get((stem + ending + suffix).lower())
            if found is not None:
                return found
    return None


def find_mask(image: Path, root: Path) -> Path | None:
    """The mask of ``image``, from the usual layouts, names matched whatever their case: beside it
    (``<stem>_mask.png``, ``<stem>_label.bmp``, ``_gt``; for a JPEG also ``<stem>.png``, as
    Magnetic-tile ships), in a mask folder beside it (DAGM 2007's
    ``Label/<stem>_label.PNG``), or ``<ancestor>/ground_truth/<type>/<stem>[_mask|_label].png``
    where ``<type>`` is the image's folder (MVTec AD, KolektorSDD as shipped here). The search
    goes one level above ``root``: given MVTec's ``test/``, the masks are in its sibling
    ``ground_truth/``."""
    # Absolute (not resolved: symlinked data stays where it was named) so that a relative root
    # such as `test` still has a parent to search.
    image = Path(image).absolute()
    top = Path(root).absolute().parent
    stem = image.stem
    found = _mask_in(image.parent, stem, MASK_STEM_ENDINGS)
    if found is None and image.suffix.lower() in JPEG_SUFFIXES:
        found = _mask_in(image.parent, stem, ("",), SAME_STEM_MASK_SUFFIXES)
    for masks in mask_folders(image.parent):
        found = found or _mask_in(masks, stem, ("", *MASK_STEM_ENDINGS))
    ancestor = image.parent
    while found is None:
        for masks in mask_folders(ancestor):
            found = found or _mask_in(masks / image.parent.name, stem, ("", *MASK_STEM_ENDINGS))
        if ancestor == top or ancestor == ancestor.parent or not ancestor.is_relative_to(top):
            break
        ancestor = ancestor.parent
    return found


def folder_label(image: Path, root: Path) -> str | None:
    """The nearest folder name below ``root`` that names a class (``None`` for root files and
    for images only inside container folders such as ``Imgs/`` or ``train/``)."""
    parts = Path(image).relative_to(root).parts[:-1]
    for name in reversed(parts):
        if name.lower() not in CONTAINER_FOLDERS:
            return name
    return None


def labels_from_masks(rows: list[dict[str, Any]]) -> None:
    """Let masks label rows (``path``, ``label`` from the folder, ``mask``) in place, where the
    folder does not name a class: images without a class folder take ``defect`` (any defect
    pixel) or ``good`` from their mask; and a folder whose masks mark some image clean names a
    sample, not a defect class (KolektorSDD as published: ``kos01/Part0.jpg`` beside
    ``Part0_label.bmp``, good and cracked parts in one folder), so its masked images are
    labelled by their masks too. In such a folder, an image without a mask beside masked ones is
    a clean part (DAGM 2007 ships masks for its defective images only). A defect-type folder
    (MVTec's ``test/crack``) keeps its name."""
    has_defect: dict[int, bool] = {}
    for i, row in enumerate(rows):
        label = row.get("label")
        if row.get("mask") is not None and (label is None or not is_good_label(label)):
            has_defect[i] = bool((decode_image(Path(row["mask"])) > 0).any())
    samples = {rows[i].get("label") for i, defect in has_defect.items() if not defect}

    def named_by_masks(row: dict[str, Any]) -> bool:
        return row.get("label") is None or row.get("label") in samples

    by_mask = [i for i in has_defect if named_by_masks(rows[i])]
    masked_folders = {Path(rows[i]["path"]).parent for i in by_mask}
    for i in by_mask:
        rows[i]["label"] = "defect" if has_defect[i] else "good"
    for row in rows:
        if named_by_masks(row) and row.get("mask") is None and Path(row["path"]).parent in masked_folders:
            row["label"] = "good"


def labelled_folder(root: Path) -> list[dict[str, Any]]:
    """Rows ``path, label, mask`` for every image under ``root``. Labels come from folders, or
    from masks where no folder names a class (``labels_from_masks``); images without either
    stay unlabelled (``None``)."""
    root = Path(root)
    rows: list[dict[str, Any]] = [
        {"path": path, "label": folder_label(path, root), "mask": find_mask(path, root)}
        for path in list_images(root)
    ]
    labels_from_masks(rows)
    return rows
