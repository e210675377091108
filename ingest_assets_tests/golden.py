"""Compare the JWST ingest's output files with the spacekit 1.1.4 golden fixtures (spec A.3).

Rules, and the deviation (spec A.2) or quirk (spec section 7) each one applies:
- every expected CSV must exist in the actual folder; extra actual files are allowed, except that a rem file the
  reference never wrote must hold no products (D7: ours is header-only when nothing stayed unmatched);
- headers must be equal (names and order), except for rem files (D17: only their product sets are compared);
- D1: the fake target token of constructed names (`_t12_` -> `_t#_`, `_t1x0_` -> `_t#x0_`) is masked in `dname` of
  train/raw files and in `Dataset` of rem files;
- D9 / Q13: a `date` written `YYYY-MM-DD 00:00:00` (the reference's repro rewrite of train files) equals `YYYY-MM-DD`;
- cells are text; two numbers are equal within rtol 1e-9 (pandas 2 vs 3 float parsing, section 9), so `454146.0`
  equals `454146`; everything else compares as exact text;
- D13 / Q23: on a day whose working frame the reference sorted unstably (priors loaded that day and more than 16
  rows), the exposure order inside a product, hence its first and reference exposure, may differ from ours. Columns
  copied from those exposures are then not compared: in raw-image/spec/tac the reference exposure's scraper fields
  and the target-offset columns (targets are measured from the first exposure), in train-image/spec/tac
  targ_max_offset, targ_frac, gs_mag and numdthpt, in raw-fgs/train-fgs every feature but the exposure count.
  This holds for every row except those the reference built on a stable day: the row's `date` is such a day and
  that day's run matched its `Dataset` (a repro rewrite moves `date` later, a prior L3 keeps an earlier one);
- Q24: in train/raw rows of exactly two exposures, (sigma1_mean, frac) may be either outcome, (0, 0) or
  (max_offset, 0.5), and likewise for the targ_ columns;
- rows are paired by key (`Dataset`, plus the masked `dname` in train/raw files), equal keys by date and then in
  order of appearance; row order itself is compared only where the reference's is stable (Q23: no priors loaded in
  any run so far and at most 16 rows per date);
- D7: a rem file the reference rewrote that day must hold the same products; a stale one (identical to the previous
  day's) accepts either no products or that same set.
Not needed by these fixtures, so no rule: Q2 (every day matched something; `ragged_rows_after` are all zero),
D11 (booleans are only True/False), D12 (no code above the static tables), D5/D15 (no reference run crashed).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "golden" / "jwst-cal"
MAX_DIFFS_PER_FILE = 20
RTOL = 1e-9
ATOL = 1e-12
STABLE_SORT_MAX_ROWS = 16  # numpy's quicksort is an insertion sort, hence stable, up to 16 elements
T_TOKEN = re.compile(r"_t\d+(x\d+)?_")
MIDNIGHT = re.compile(r"^(\d{4}-\d{2}-\d{2}) 00:00:00$")
N2_PAIRS = (("sigma1_mean", "frac", "max_offset"), ("targ_sigma1_mean", "targ_frac", "targ_max_offset"))
FIRST_EXPOSURE_COLUMNS = {  # D13: columns of train/raw files copied from a product's first or reference exposure
    "raw-": ("RA_REF", "DEC_REF", "CRVAL1", "CRVAL2", "GS_RA", "GS_DEC", "GS_MAG", "TARG_RA", "TARG_DEC", "NUMDTHPT",
             "targ_offset", "targ_max_offset", "targ_mean_offset", "targ_sigma_offset", "targ_err_offset",
             "targ_sigma1_mean", "targ_frac", "t_offset", "gs_offset"),
    "train-": ("targ_max_offset", "targ_frac", "gs_mag", "numdthpt"),
}
FGS_GROUP_COLUMNS = {  # FGS products copy the first exposure: every other column is order-dependent
    "raw-fgs.csv": {"NEXPOSUR", "imagesize", "date", "pname", "imgsize_gb", "Dataset"},
    "train-fgs.csv": {"nexposur", "dname", "pname", "imagesize", "date", "imgsize_gb", "Dataset"},
}


@dataclass(frozen=True)
class GoldenDay:
    """One ingested day of a golden set."""

    date: str
    drop: Path
    expected_dir: Path
    previous_expected_dir: Path | None
    run: dict


def golden_days(set_name: str) -> list[GoldenDay]:
    """The days of a golden set in date order."""
    set_dir = GOLDEN_DIR / set_name
    dirs = sorted((set_dir / "expected").glob("after-*"))
    days = []
    for prev, cur in zip([None, *dirs], dirs):
        run = _read_json(cur / "run.json")
        days.append(GoldenDay(run["date"], set_dir / "input" / run["file"], cur, prev, run))
    return days


def compare_outputs(
    expected_dir: Path, actual_dir: Path, *, previous_expected_dir: Path | None, run: dict
) -> list[str]:
    """Differences between the reference's outputs after one day and ours; empty when they agree."""
    runs = _runs_so_far(expected_dir, run)
    ordered = not any(r["prior_rows_in_df"] for r in runs)
    stable = _stable_products(runs)
    diffs: list[str] = []
    for expected in sorted(expected_dir.glob("*.csv")):
        actual = actual_dir / expected.name
        if not actual.exists():
            diffs.append(f"{expected.name}: missing")
        elif expected.name.startswith("rem-"):
            previous = previous_expected_dir / expected.name if previous_expected_dir else None
            diffs += _limit(expected.name, _compare_rem(expected, actual, previous))
        else:
            diffs += _limit(expected.name, _compare_table(expected, actual, ordered, stable))
    for actual in sorted(actual_dir.glob("rem-*.csv")):
        if not (expected_dir / actual.name).exists():
            diffs += _limit(actual.name, _rem_set_diffs(actual.name, Counter(), _products(actual)))
    return diffs


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _runs_so_far(expected_dir: Path, run: dict) -> list[dict]:
    """This run and the earlier ones of the same set (sibling `after-*` folders)."""
    earlier = [p for p in expected_dir.parent.glob("after-*/run.json") if p.parent.name < expected_dir.name]
    return [run, *map(_read_json, earlier)]


def _sorted_stably(run: dict) -> bool:
    """Q23: the reference re-sorts its working frame by date only when priors are loaded, unstably above 16 rows."""
    return not (run["prior_rows_in_df"] and run["df_rows_final"] > STABLE_SORT_MAX_ROWS)


def _stable_products(runs: list[dict]) -> pd.MultiIndex:
    """(date, L3 name) of every product matched on a day whose exposure order is stable."""
    pairs = [(r["date"], p) for r in runs if _sorted_stably(r) for p in r["l3_matched"]]
    return pd.MultiIndex.from_tuples(pairs, names=["date", "Dataset"])


def _limit(name: str, diffs: list[str]) -> list[str]:
    if len(diffs) <= MAX_DIFFS_PER_FILE:
        return diffs
    hidden = len(diffs) - MAX_DIFFS_PER_FILE
    return diffs[:MAX_DIFFS_PER_FILE] + [f"{name}: ... and {hidden} more differences not shown"]


def _read(path: Path) -> pd.DataFrame:
    """A CSV as text cells; a missing trailing field reads as NaN."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _mask(names: pd.Series) -> pd.Series:
    return names.str.replace(T_TOKEN, lambda m: f"_t#{m.group(1) or ''}_", regex=True)


def _normalise(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Apply D1 (t-token mask in train/raw `dname`) and D9 (midnight timestamps are dates)."""
    df = df.copy()
    if "dname" in df and name.startswith(("train-", "raw-")):
        df["dname"] = _mask(df["dname"])
    if "date" in df:
        df["date"] = df["date"].str.replace(MIDNIGHT, r"\1", regex=True)
    return df


def _key_cols(df: pd.DataFrame, name: str) -> list[str]:
    return ["Dataset", "dname"] if name.startswith(("train-", "raw-")) and "dname" in df else ["Dataset"]


def _stable(df: pd.DataFrame) -> bool:
    """Q23: the reference's date sorts keep the order of equal dates only for at most 16 rows per date."""
    per_date = df["date"].value_counts() if "date" in df else pd.Series([len(df)])
    return bool((per_date <= STABLE_SORT_MAX_ROWS).all())


def _compare_table(expected_path: Path, actual_path: Path, ordered: bool, stable: pd.MultiIndex) -> list[str]:
    name = expected_path.name
    try:
        exp, act = _read(expected_path), _read(actual_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        return [f"{name}: cannot be read: {exc}"]
    diffs = []
    if list(act.columns) != list(exp.columns):
        diffs.append(f"{name}: header differs: expected {list(exp.columns)}, actual {list(act.columns)}")
    keys = _key_cols(exp, name)
    if any(k not in act for k in keys):
        return diffs + [f"{name}: actual has no key column {keys}"]
    ragged = act[act.isna().any(axis=1)]
    diffs += [f"{name}: row {_describe(r, keys)}: fewer fields than the header" for _, r in ragged.head(3).iterrows()]
    exp, act = _normalise(exp, name), _normalise(act.fillna(""), name)
    pairs = _pair_rows(exp, act, keys)
    diffs += _unpaired(name, pairs, keys)
    both = pairs[pairs["_merge"] == "both"]
    if ordered and _stable(exp):
        diffs += _order_diffs(name, both, keys)
    common = [c for c in exp.columns if c in act.columns and c not in keys]
    unstable = _unstable_rows(name, both, stable)
    return diffs + _cell_diffs(name, both, common, keys, _order_dependent(name, common), unstable)


def _pair_rows(exp: pd.DataFrame, act: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Outer join on key plus occurrence number; `_pos_e`/`_pos_a` are the row positions."""
    return _number(exp, keys).merge(
        _number(act, keys), on=[*keys, "_occ"], how="outer", suffixes=("_e", "_a"), indicator=True
    )


def _number(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Number the rows of equal key by date, then order of appearance (repeats come from different days)."""
    df = df.assign(_pos=np.arange(len(df)))
    by_date = df.sort_values("date", kind="stable") if "date" in df else df
    return df.assign(_occ=by_date.groupby(keys, dropna=False).cumcount())


def _describe(row: pd.Series, keys: list[str]) -> str:
    occ = f" #{int(row['_occ']) + 1}" if row.get("_occ", 0) else ""
    return ", ".join(f"{k}={row[k]}" for k in keys) + occ


def _unpaired(name: str, pairs: pd.DataFrame, keys: list[str]) -> list[str]:
    side = {"left_only": "missing row", "right_only": "extra row"}
    rows = pairs[pairs["_merge"] != "both"]
    counts = rows["_merge"].value_counts()
    total = (
        [f"{name}: {counts.get('left_only', 0)} missing rows, {counts.get('right_only', 0)} extra rows"]
        if len(rows) > MAX_DIFFS_PER_FILE else []
    )
    return total + [
        f"{name}: {side[r['_merge']]} {_describe(r, keys)}" for _, r in rows.head(MAX_DIFFS_PER_FILE).iterrows()
    ]


def _order_diffs(name: str, both: pd.DataFrame, keys: list[str]) -> list[str]:
    by_expected = both.sort_values("_pos_e")
    out_of_order = np.flatnonzero(np.diff(by_expected["_pos_a"].to_numpy()) < 0)
    if not len(out_of_order):
        return []
    row = by_expected.iloc[out_of_order[0] + 1]
    expected_at = int(row["_pos_e"])
    return [f"{name}: row order differs: row {_describe(row, keys)} comes too early (expected row {expected_at})"]


def _numbers(cells: pd.Series) -> np.ndarray:
    return pd.to_numeric(cells, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _cell_equal(exp: pd.Series, act: pd.Series) -> np.ndarray:
    e, a = _numbers(exp), _numbers(act)
    return (exp.to_numpy() == act.to_numpy()) | np.isclose(a, e, rtol=RTOL, atol=ATOL)


def _close(values: np.ndarray, target: np.ndarray | float) -> np.ndarray:
    return np.isclose(values, target, rtol=RTOL, atol=ATOL)


def _accept_n2(both: pd.DataFrame, equal: dict[str, np.ndarray]) -> None:
    """Q24: in rows of two exposures accept either sigma1_mean/frac outcome (mutates `equal`)."""
    n_col = next((c for c in ("nexposur_e", "NEXPOSUR_e") if c in both), None)
    if n_col is None:
        return
    two = _numbers(both[n_col]) == 2
    for sig, frac, mx in N2_PAIRS:
        if frac not in equal or f"{mx}_e" not in both:
            continue
        a_frac, e_max = _numbers(both[f"{frac}_a"]), _numbers(both[f"{mx}_e"])
        a_sig = _numbers(both[f"{sig}_a"]) if sig in equal else None
        as_zero = _close(a_frac, 0.0) & (_close(a_sig, 0.0) if a_sig is not None else True)
        # (max, 0.5) needs two different offsets, hence max > 0
        as_max = (e_max > 0) & _close(a_frac, 0.5) & (_close(a_sig, e_max) if a_sig is not None else True)
        ok = two & (as_zero | as_max)
        equal[frac] = equal[frac] | ok
        if sig in equal:
            equal[sig] = equal[sig] | ok


def _order_dependent(name: str, cols: list[str]) -> list[str]:
    """D13: the columns of a train/raw file that depend on which exposure comes first in a product."""
    if name in FGS_GROUP_COLUMNS:
        return [c for c in cols if c not in FGS_GROUP_COLUMNS[name]]
    prefix = next((p for p in FIRST_EXPOSURE_COLUMNS if name.startswith(p)), None)
    return [c for c in cols if c in FIRST_EXPOSURE_COLUMNS[prefix]] if prefix else []


def _unstable_rows(name: str, both: pd.DataFrame, stable: pd.MultiIndex) -> np.ndarray:
    """D13 / Q23: train/raw rows not built on a day whose exposure order is stable."""
    if not name.startswith(("train-", "raw-")) or "date_e" not in both:
        return np.zeros(len(both), dtype=bool)
    built = pd.MultiIndex.from_arrays([both["date_e"], both["Dataset"]])
    return ~built.isin(stable)


def _cell_diffs(name: str, both: pd.DataFrame, cols: list[str], keys: list[str], order_dependent: list[str],
                unstable: np.ndarray) -> list[str]:
    equal = {c: _cell_equal(both[f"{c}_e"], both[f"{c}_a"]) for c in cols}
    _accept_n2(both, equal)
    for c in order_dependent:
        equal[c] = equal[c] | unstable
    bad = pd.DataFrame({c: ~equal[c] for c in cols}, index=both.index).stack()
    bad = bad[bad].index
    total = [f"{name}: {len(bad)} differing cells in all"] if len(bad) > MAX_DIFFS_PER_FILE else []
    return total + [
        f"{name}: row {_describe(both.loc[i], keys)}, column {c}: "
        f"expected {both.at[i, c + '_e']!r}, actual {both.at[i, c + '_a']!r}"
        for i, c in bad[:MAX_DIFFS_PER_FILE]
    ]


def _products(path: Path) -> Counter:
    """D1/D17: the masked constructed names of a rem file, as a multiset."""
    df = _read(path)
    if "Dataset" not in df:
        return Counter(["<no Dataset column>"])
    return Counter(_mask(df["Dataset"]).value_counts().to_dict())


def _rem_set_diffs(name: str, expected: Counter, actual: Counter) -> list[str]:
    missing, extra = expected - actual, actual - expected
    return [f"{name}: missing product {p}" for p in sorted(missing.elements())] + [
        f"{name}: extra product {p}" for p in sorted(extra.elements())
    ]


def _compare_rem(expected: Path, actual: Path, previous: Path | None) -> list[str]:
    """D7: a rewritten rem file must hold the same products; a stale one also accepts none."""
    exp, act = _products(expected), _products(actual)
    stale = previous is not None and previous.exists() and previous.read_bytes() == expected.read_bytes()
    if stale and not act:
        return []
    diffs = _rem_set_diffs(expected.name, exp, act)
    return [f"{d} (stale reference file: no products is also accepted)" for d in diffs] if stale else diffs
