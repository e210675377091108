"""Output files of the SVM ingest: per-visit CSVs, combined training sets, image folders and their inspection."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from .constants import FEATURE_COLS, IMAGE_SUFFIXES, INDEX_COL, LABEL_COL, RAW_COLS
from .scrub import with_index_column
from .visits import SvmInputError, crpt_suffix, first_line, is_visit_name

# Sane band for the long side of a drawn PNG, in pixels (spacekit's 24-inch canvas gives about 1868).
IMAGE_LONG_SIDE = (128, 10_000)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` with its product index as the last `index` column, atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with_index_column(frame).to_csv(tmp, index=False)
    os.replace(tmp, path)
    return path


def visit_csvs(folder: Path) -> list[Path]:
    """The per-visit CSVs `<visit>.csv` of an output folder, in visit-name order (other files are ignored)."""
    return sorted(p for p in folder.glob("*.csv") if p.is_file() and is_visit_name(p.stem))


def read_visit_csv(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A per-visit CSV as text (its values are kept byte for byte), keyed by product index."""
    name = f"{path.parent.name}/{path.name}"
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as exc:
        raise SvmInputError(f"cannot read {name}: {first_line(exc)}") from exc
    absent = [c for c in (*columns, INDEX_COL) if c not in frame.columns]
    if absent:
        raise SvmInputError(f"{name} lacks the column(s) {absent}")
    return frame.set_index(INDEX_COL)


def combine(paths: list[Path], columns: tuple[str, ...]) -> pd.DataFrame:
    """Union of per-visit CSVs in the given order, columns in `columns` order (`label` kept when any visit has it,
    empty for the others)."""
    frames = [read_visit_csv(path, columns) for path in paths]
    if not frames:
        return pd.DataFrame(columns=list(columns), index=pd.Index([], name=INDEX_COL))
    union = pd.concat(frames)
    return union[[*columns, LABEL_COL] if LABEL_COL in union.columns else list(columns)]


def combine_features(folder: Path) -> pd.DataFrame:
    """spacekit's preprocessed.csv content: the final features of every visit CSV in `folder`."""
    return combine(visit_csvs(folder), FEATURE_COLS)


def combine_raw(folder: Path) -> pd.DataFrame:
    """spacekit's raw_combined.csv content: the raw features of every visit CSV in `folder`."""
    return combine(visit_csvs(folder), RAW_COLS)


def image_paths(img_root: Path, index: str) -> list[Path]:
    """The three PNG paths of one product row."""
    return [img_root / index / f"{index}{suffix}.png" for suffix in IMAGE_SUFFIXES]


def remove_stale_images(img_root: Path, visit: str, keep: set[str]) -> list[str]:
    """Delete image folders of `visit` whose product is no longer in it (re-ingest stays idempotent)."""
    stale = [d for d in img_root.glob(f"*_total_{visit[:6]}{crpt_suffix(visit)}")
             if d.is_dir() and d.name not in keep]
    for folder in stale:
        shutil.rmtree(folder)
    return sorted(d.name for d in stale)


def inspect_png(path: Path) -> str | None:
    """Why a PNG is not usable (missing, empty, unreadable, odd size), or None when it is fine."""
    if not path.is_file() or path.stat().st_size == 0:
        return "missing or empty"
    try:
        with Image.open(path) as image:
            image.load()
            size, kind = image.size, image.format
    except (OSError, UnidentifiedImageError) as exc:
        return f"unreadable: {exc}"
    low, high = IMAGE_LONG_SIDE
    if kind != "PNG" or not low <= max(size) <= high:
        return f"{kind} of {size[0]}x{size[1]} px"
    return None


def image_problems(img_root: Path, indices: list[str]) -> dict[str, str]:
    """Problems of the expected images of `indices`, keyed by file name (empty when all are fine)."""
    found = {path.name: inspect_png(path) for index in indices for path in image_paths(img_root, index)}
    return {name: problem for name, problem in found.items() if problem}
