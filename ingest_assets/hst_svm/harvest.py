"""Harvest of a visit's drizzlepac QA JSONs into one raw row per total product (spacekit's JsonScraper)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .constants import (
    COMPARE_PREFIXES,
    DEFAULT_JSON_PATTERN,
    GEN_INFO_KEYS,
    HEADER_KEYS,
    SKIPPED_LEAVES,
)
from .visits import SvmInputError, product_index

SECTIONS = ("header", "general information", "data")


@dataclass(frozen=True)
class QaFile:
    """One parsed HapDiagnostic JSON: its path and its three sections."""

    path: Path
    header: dict[str, Any]
    general: dict[str, Any]
    data: dict[str, Any]


def find_qa_files(visit_dir: Path, pattern: str = DEFAULT_JSON_PATTERN) -> list[Path]:
    """JSONs of `visit_dir` matching any comma-separated glob, sorted by path."""
    hits = {p for part in pattern.split(",") if part.strip() for p in visit_dir.glob(part.strip())}
    return sorted(hits)


def read_qa_file(path: Path) -> QaFile:
    """Parse one QA JSON (bare NaN/Infinity tokens allowed, as drizzlepac writes them)."""
    try:
        content = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SvmInputError(f"cannot read QA JSON {path.name}: {exc}") from exc
    absent = [s for s in SECTIONS if not isinstance(content, dict) or not isinstance(content.get(s), dict)]
    if absent:
        raise SvmInputError(f"QA JSON {path.name} lacks the section(s) {absent}")
    return QaFile(path, content["header"], content["general information"], content["data"])


def flatten(payload: Any, key: str = "") -> dict[str, Any]:
    """Dotted leaves of a nested dict (spaces -> `_`), skipping leaves named data/unit/format/dtype."""
    if isinstance(payload, dict):
        flat: dict[str, Any] = {}
        for name, value in payload.items():
            part = str(name).replace(" ", "_")
            flat.update(flatten(value, f"{key}.{part}" if key else part))
        return flat
    return {} if key.rsplit(".", 1)[-1] in SKIPPED_LEAVES else {key: payload}


def data_columns(qa: QaFile) -> dict[str, Any]:
    """Flattened payloads of a file's data items, with the HAP-vs-HLA prefix where it applies."""
    prefix = next((p for suffix, p in COMPARE_PREFIXES.items() if qa.path.name.endswith(suffix)), "")
    payloads = {title: item.get("data") if isinstance(item, dict) else item for title, item in qa.data.items()}
    return {prefix + k: v for k, v in flatten(payloads).items()}


def product_row(files: list[QaFile]) -> dict[str, Any]:
    """Raw row of one product: shortlisted header/general keys of its first file, then every file's data."""
    first = files[0]
    row = {f"header.{k}": v for k, v in first.header.items() if k in HEADER_KEYS}
    row.update({f"gen_info.{k}": first.general[k] for k in GEN_INFO_KEYS if k in first.general})
    for qa in files:
        row.update(data_columns(qa))
    return row


def group_key(qa: QaFile, visit: str) -> str:
    """Product row key of a QA file: `dataframe_index`, plus the synthetic suffix of the visit dir name."""
    index = qa.general.get("dataframe_index")
    if not isinstance(index, str) or not index:
        raise SvmInputError(f"QA JSON {qa.path.name} has no general information.dataframe_index")
    return product_index(index, visit)


def harvest_frame(files: list[QaFile], visit: str) -> pd.DataFrame:
    """One row per product key, in order of first appearance; columns keep their dotted harvested names."""
    if not files:
        raise SvmInputError(f"no QA JSON found in visit {visit}")
    groups: dict[str, list[QaFile]] = {}
    for qa in files:
        groups.setdefault(group_key(qa, visit), []).append(qa)
    return pd.DataFrame([product_row(g) for g in groups.values()], index=pd.Index(list(groups), name="index"))


def provenance(files: list[QaFile]) -> dict[str, str]:
    """drizzlepac commit ids and generation dates named in the QA files (for run metadata)."""
    def distinct(key: str) -> str:
        return ", ".join(sorted({str(qa.general[key]) for qa in files if key in qa.general}))

    return {"drizzlepac_commit": distinct("commit id"), "generation_date": distinct("generation date")}
