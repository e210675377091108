"""Golden tests: the JWST ingest, run day by day on the golden drops, equals spacekit 1.1.4 (spec A.3).

Each set is ingested once per test module (every day in date order, level-1 saving on); each day is then its own
test, so a failure names the day and lists all of that day's differences.
"""

from __future__ import annotations

import shutil
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest_assets_tests.golden import compare_outputs, golden_days

SET_MARKS = {"small-s2": (), "week-s3": (pytest.mark.slow,)}
CASES = [
    pytest.param(name, day.date, id=f"{name}/{day.date}", marks=marks)
    for name, marks in SET_MARKS.items()
    for day in golden_days(name)
]


def ingest_and_compare(set_name: str, root: Path) -> dict[str, list[str]]:
    """Ingest every drop of a set in date order into one output folder; the differences after each day."""
    from ingest_assets.jwst_cal.pipeline import ingest_drop

    days = golden_days(set_name)
    drops, out = root / "drops", root / "out"
    drops.mkdir()
    out.mkdir()
    for day in days:
        shutil.copy(day.drop, drops)
    results: dict[str, list[str]] = {}
    crashed = None
    for day in days:
        if crashed:
            results[day.date] = [f"not compared: the ingest of {crashed} raised"]
            continue
        try:
            ingest_drop(drops / day.drop.name, out, save_l1=True)
        except Exception:
            crashed = day.date
            results[day.date] = [f"ingest_drop raised:\n{traceback.format_exc()}"]
            continue
        results[day.date] = compare_outputs(
            day.expected_dir, out, previous_expected_dir=day.previous_expected_dir, run=day.run
        )
    return results


@pytest.fixture(scope="module")
def ingested(tmp_path_factory) -> Callable[[str], dict[str, list[str]]]:
    """The per-day differences of a golden set, computed on first use."""
    cache: dict[str, dict[str, list[str]]] = {}

    def get(set_name: str) -> dict[str, list[str]]:
        if set_name not in cache:
            cache[set_name] = ingest_and_compare(set_name, tmp_path_factory.mktemp(set_name))
        return cache[set_name]

    return get


@pytest.mark.parametrize(("set_name", "date"), CASES)
def test_outputs_equal_the_reference_after_each_day(ingested, set_name, date):
    diffs = ingested(set_name)[date]
    if diffs:
        pytest.fail(f"{set_name} after {date}: {len(diffs)} differences\n" + "\n".join(diffs), pytrace=False)
