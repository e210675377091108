"""Tests of the golden comparator on small hand-made output folders and on the golden fixtures themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest_assets_tests.golden import compare_outputs, golden_days

TRAIN = "train-image.csv"
HEADER = ("nexposur", "max_offset", "sigma1_mean", "frac", "targ_max_offset", "targ_frac", "dname", "imagesize",
          "date", "Dataset")
ROW_A = ["3", "12.5", "12.5", "0.3333333333333333", "40.0", "0.3333333333333333",
         "jw01234-o001_t1_nircam_clear-f200w", "454146.0", "2025-06-01", "jw01234-o001_t001_nircam_clear-f200w"]
ROW_B = ["2", "7.25", "0.0", "0.0", "9.5", "0.0",
         "jw01234-o002_t2_nircam_clear-f090w", "1000.0", "2025-06-01", "jw01234-o002_t001_nircam_clear-f090w"]
ROW_C = ["4", "3.0", "3.0", "0.25", "5.0", "0.25",
         "jw01234-o003_t1x0_nircam_clear-f444w", "2000.0", "2025-06-01", "jw01234-o003_t001_nircam_clear-f444w"]
DAY = "2025-06-01"


def run_record(date: str = DAY, *, priors: int = 0, rows: int = 40, matched: tuple[str, ...] = ()) -> dict:
    """The run.json fields the comparator reads; `matched` defaults to the products of ROW_A/B/C."""
    products = matched or tuple(r[-1] for r in (ROW_A, ROW_B, ROW_C))
    return {"date": date, "prior_rows_in_df": priors, "df_rows_final": rows, "l3_matched": list(products)}


NO_PRIORS = run_record()
PRIORS = run_record(priors=4)
REM_HEADER = ("NEXPOSUR", "Dataset")


def write_csv(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(",".join(r) for r in [list(header), *rows]) + "\n")


def with_value(row: list[str], column: str, value: str) -> list[str]:
    changed = list(row)
    changed[HEADER.index(column)] = value
    return changed


def compare_train(tmp_path: Path, expected: list[list[str]], actual: list[list[str]], *, run: dict = NO_PRIORS,
                  actual_header: tuple[str, ...] = HEADER) -> list[str]:
    write_csv(tmp_path / "exp" / TRAIN, HEADER, expected)
    write_csv(tmp_path / "act" / TRAIN, actual_header, actual)
    return compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=None, run=run)


def test_identical_files_pass(tmp_path):
    assert compare_train(tmp_path, [ROW_A, ROW_B, ROW_C], [ROW_A, ROW_B, ROW_C]) == []


def test_numbers_compare_within_1e9_relative(tmp_path):
    close = [with_value(with_value(ROW_A, "imagesize", "454146"), "max_offset", repr(12.5 * (1 + 1e-12)))]
    assert compare_train(tmp_path, [ROW_A], close) == []


def test_float_changed_beyond_1e9_fails_naming_file_row_and_column(tmp_path):
    diffs = compare_train(tmp_path, [ROW_A, ROW_B], [with_value(ROW_A, "max_offset", repr(12.5 * (1 + 1e-8))), ROW_B])
    assert len(diffs) == 1
    assert all(part in diffs[0] for part in (TRAIN, "jw01234-o001_t001_nircam_clear-f200w", "max_offset"))


def test_missing_row_fails(tmp_path):
    diffs = compare_train(tmp_path, [ROW_A, ROW_B, ROW_C], [ROW_A, ROW_C])
    assert len(diffs) == 1 and "missing row" in diffs[0] and "jw01234-o002_t001_nircam_clear-f090w" in diffs[0]


def test_extra_row_fails(tmp_path):
    diffs = compare_train(tmp_path, [ROW_A, ROW_C], [ROW_A, ROW_B, ROW_C])
    assert len(diffs) == 1 and "extra row" in diffs[0] and "jw01234-o002_t001_nircam_clear-f090w" in diffs[0]


def test_swapped_column_order_fails(tmp_path):
    i, j = HEADER.index("sigma1_mean"), HEADER.index("frac")
    swapped = list(HEADER)
    swapped[i], swapped[j] = swapped[j], swapped[i]

    def swap(row: list[str]) -> list[str]:
        out = list(row)
        out[i], out[j] = out[j], out[i]
        return out

    diffs = compare_train(tmp_path, [ROW_A], [swap(ROW_A)], actual_header=tuple(swapped))
    assert len(diffs) == 1 and "header" in diffs[0]


def test_midnight_timestamp_equals_date(tmp_path):
    expected = [with_value(ROW_A, "date", "2025-06-01 00:00:00")]
    assert compare_train(tmp_path, expected, [ROW_A]) == []
    assert compare_train(tmp_path, expected, [with_value(ROW_A, "date", "2025-06-02")]) != []


@pytest.mark.parametrize(("expected", "actual"), [
    ("jw01234-o003_t1_nircam_clear-f444w", "jw01234-o003_t7_nircam_clear-f444w"),
    ("jw01234-o003_t1x0_nircam_clear-f444w", "jw01234-o003_t12x0_nircam_clear-f444w"),
])
def test_fake_target_number_is_masked(tmp_path, expected, actual):
    assert compare_train(tmp_path, [with_value(ROW_C, "dname", expected)], [with_value(ROW_C, "dname", actual)]) == []


@pytest.mark.parametrize("dname", [
    "jw01234-o001_t1_nircam_clear-f150w",  # filter
    "jw01234-o009_t1_nircam_clear-f200w",  # observation
    "jw01234-o001_s000000001_nircam_clear-f200w",  # source id instead of a fake target id
])
def test_difference_outside_the_token_fails(tmp_path, dname):
    diffs = compare_train(tmp_path, [ROW_A], [with_value(ROW_A, "dname", dname)])
    assert diffs and all(TRAIN in d for d in diffs)


def test_pointing_split_index_is_not_masked(tmp_path):
    assert compare_train(tmp_path, [ROW_C], [with_value(ROW_C, "dname", "jw01234-o003_t1x1_nircam_clear-f444w")])


def test_row_order_counts_only_where_the_reference_is_stable(tmp_path):
    diffs = compare_train(tmp_path, [ROW_A, ROW_B], [ROW_B, ROW_A])
    assert len(diffs) == 1 and "row order" in diffs[0]
    assert compare_train(tmp_path, [ROW_A, ROW_B], [ROW_B, ROW_A], run=PRIORS) == []
    many = [with_value(ROW_A, "Dataset", f"jw01234-o{i:03d}_t001_nircam_clear-f200w") for i in range(17)]
    assert compare_train(tmp_path, many, many[::-1]) == []


def write_day(exp_root: Path, run: dict, name: str, header: tuple[str, ...], rows: list[list[str]]) -> Path:
    """One reference day folder `after-<date>` with its run.json and one output file."""
    day_dir = exp_root / f"after-{run['date']}"
    write_csv(day_dir / name, header, rows)
    (day_dir / "run.json").write_text(json.dumps(run))
    return day_dir


def test_priors_of_an_earlier_day_make_the_order_unstable(tmp_path):
    write_day(tmp_path / "exp", run_record("2025-06-01", priors=3), TRAIN, HEADER, [ROW_A, ROW_B])
    second = run_record("2025-06-02")
    day_dir = write_day(tmp_path / "exp", second, TRAIN, HEADER, [ROW_A, ROW_B])
    write_csv(tmp_path / "act" / TRAIN, HEADER, [ROW_B, ROW_A])
    diffs = compare_outputs(day_dir, tmp_path / "act", previous_expected_dir=tmp_path / "exp" / "after-2025-06-01",
                            run=second)
    assert diffs == []


def compare_one(tmp_path: Path, name: str, header: tuple[str, ...], expected: dict[str, str],
                actual: dict[str, str], run: dict) -> list[str]:
    write_csv(tmp_path / "exp" / name, header, [[expected[c] for c in header]])
    write_csv(tmp_path / "act" / name, header, [[actual[c] for c in header]])
    return compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=None, run=run)


RAW_IMAGE = {"NEXPOSUR": "3", "CRVAL1": "150.1", "GS_MAG": "14.2", "targ_offset": "8.5", "t_offset": "8.5",
             "max_offset": "12.5", "dname": "jw01234-o001_t1_nircam_clear-f200w", "date": DAY, "Dataset": ROW_A[-1]}
RAW_FGS = {"DETECTOR": "GUIDER1", "TARG_RA": "10.5", "NEXPOSUR": "3", "imagesize": "1000", "date": DAY,
           "Dataset": ROW_A[-1]}
TRAIN_FGS = {"detector": "1", "numdthpt": "4", "nexposur": "3", "dname": "jw01234-o001_t1_fgs_", "imagesize": "1000",
             "date": DAY, "Dataset": ROW_A[-1]}
TRAINING = {"GS_MAG": "14.2", "date": DAY, "Dataset": ROW_A[-1]}
TRAIN_IMAGE = dict(zip(HEADER, ROW_A))
FIRST_EXPOSURE_CASES = [  # file, row, a column taken from the first exposure, an order-independent column
    ("raw-image.csv", RAW_IMAGE, "CRVAL1", "max_offset"),
    ("raw-image.csv", RAW_IMAGE, "GS_MAG", "NEXPOSUR"),
    ("raw-image.csv", RAW_IMAGE, "targ_offset", "max_offset"),
    ("raw-image.csv", RAW_IMAGE, "t_offset", "max_offset"),
    ("raw-fgs.csv", RAW_FGS, "DETECTOR", "NEXPOSUR"),
    ("raw-fgs.csv", RAW_FGS, "TARG_RA", "imagesize"),
    ("train-fgs.csv", TRAIN_FGS, "detector", "nexposur"),
    ("train-fgs.csv", TRAIN_FGS, "numdthpt", "imagesize"),
    (TRAIN, TRAIN_IMAGE, "targ_max_offset", "max_offset"),
    (TRAIN, TRAIN_IMAGE, "targ_frac", "frac"),
]


def changed(row: dict[str, str], column: str) -> dict[str, str]:
    return {**row, column: "9" + row[column]}


@pytest.mark.parametrize(("name", "row", "first", "other"), FIRST_EXPOSURE_CASES)
def test_first_exposure_columns_are_free_only_after_an_unstable_sort(tmp_path, name, row, first, other):
    header = tuple(row)
    unstable = run_record(priors=4, rows=17)
    assert compare_one(tmp_path, name, header, row, changed(row, first), unstable) == []
    for stable in (NO_PRIORS, run_record(priors=4, rows=16)):
        diffs = compare_one(tmp_path, name, header, row, changed(row, first), stable)
        assert len(diffs) == 1 and first in diffs[0]
    diffs = compare_one(tmp_path, name, header, row, changed(row, other), unstable)
    assert len(diffs) == 1 and other in diffs[0]


def test_first_exposure_columns_of_other_files_stay_compared(tmp_path):
    diffs = compare_one(tmp_path, "training.csv", tuple(TRAINING), TRAINING, changed(TRAINING, "GS_MAG"), PRIORS)
    assert len(diffs) == 1 and "GS_MAG" in diffs[0]


def test_rows_built_on_an_earlier_stable_day_stay_compared(tmp_path):
    row_b = with_value(ROW_B, "date", "2025-06-02")
    first = run_record("2025-06-01", matched=(ROW_A[-1],))
    second = run_record("2025-06-02", priors=5, matched=(ROW_B[-1],))
    write_day(tmp_path / "exp", first, TRAIN, HEADER, [ROW_A])
    day_dir = write_day(tmp_path / "exp", second, TRAIN, HEADER, [ROW_A, row_b])
    actual = [with_value(r, "targ_max_offset", "99.0") for r in (ROW_A, row_b)]
    write_csv(tmp_path / "act" / TRAIN, HEADER, actual)
    diffs = compare_outputs(day_dir, tmp_path / "act", previous_expected_dir=tmp_path / "exp" / "after-2025-06-01",
                            run=second)
    assert len(diffs) == 1 and ROW_A[-1] in diffs[0] and "targ_max_offset" in diffs[0]


@pytest.mark.parametrize("date", ["2025-06-01", "2025-05-30"], ids=["stable-day-of-a-prior-l3", "day-never-ingested"])
def test_row_dated_outside_its_stable_matching_day_is_relaxed(tmp_path, date):
    """A prior L3 keeps its earlier date, a repro rewrite moves it: neither says when the product was built."""
    row = with_value(ROW_A, "date", date)
    first = run_record("2025-06-01", matched=(ROW_C[-1],))
    second = run_record("2025-06-02", priors=5, matched=(ROW_A[-1],))
    write_day(tmp_path / "exp", first, TRAIN, HEADER, [ROW_C])
    day_dir = write_day(tmp_path / "exp", second, TRAIN, HEADER, [ROW_C, row])
    write_csv(tmp_path / "act" / TRAIN, HEADER, [ROW_C, with_value(row, "targ_max_offset", "99.0")])
    diffs = compare_outputs(day_dir, tmp_path / "act", previous_expected_dir=tmp_path / "exp" / "after-2025-06-01",
                            run=second)
    assert diffs == []


def test_two_exposure_groups_accept_either_sigma1_outcome(tmp_path):
    flipped = with_value(with_value(ROW_B, "sigma1_mean", "7.25"), "frac", "0.5")
    assert compare_train(tmp_path, [ROW_B], [with_value(flipped, "targ_frac", "0.5")]) == []
    assert compare_train(tmp_path, [flipped], [ROW_B]) == []


def test_two_exposure_groups_reject_other_sigma1_values(tmp_path):
    assert compare_train(tmp_path, [ROW_B], [with_value(ROW_B, "frac", "0.5")])  # sigma1_mean left at 0
    assert compare_train(tmp_path, [ROW_B], [with_value(ROW_B, "targ_frac", "0.25")])
    flipped_a = with_value(with_value(ROW_A, "sigma1_mean", "0.0"), "frac", "0.0")
    assert compare_train(tmp_path, [ROW_A], [flipped_a])  # three exposures: no choice


def test_missing_file_fails_and_extra_file_passes(tmp_path):
    write_csv(tmp_path / "exp" / TRAIN, HEADER, [ROW_A])
    write_csv(tmp_path / "exp" / "training.csv", ("Dataset",), [["x"]])
    write_csv(tmp_path / "act" / TRAIN, HEADER, [ROW_A])
    write_csv(tmp_path / "act" / "train-spec.csv", HEADER, [ROW_B])
    diffs = compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=None, run=NO_PRIORS)
    assert diffs == ["training.csv: missing"]


def test_row_with_too_few_fields_fails(tmp_path):
    write_csv(tmp_path / "exp" / TRAIN, HEADER, [ROW_A])
    (tmp_path / "act").mkdir()
    (tmp_path / "act" / TRAIN).write_text(",".join(HEADER) + "\n" + ",".join(ROW_A[:-2] + [ROW_A[-1]]) + "\n")
    assert compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=None, run=NO_PRIORS)


REM_1 = [["2", "jw01234-o001_t1_nircam_clear-f200w"], ["3", "jw01234-o002_t2_nircam_clear-f090w"]]
REM_2 = [["5", "jw05555-o010_t1_miri_f770w"]]


def compare_rem(tmp_path: Path, expected: list[list[str]], previous: list[list[str]] | None,
                actual: list[list[str]]) -> list[str]:
    write_csv(tmp_path / "exp" / "rem-image.csv", REM_HEADER, expected)
    if previous is not None:
        write_csv(tmp_path / "prev" / "rem-image.csv", REM_HEADER, previous)
    # ours has other columns (D17): only the product set counts
    write_csv(tmp_path / "act" / "rem-image.csv", ("nexposur", "dname", "Dataset"), [[n, d, d] for n, d in actual])
    prev_dir = tmp_path / "prev" if previous is not None else None
    return compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=prev_dir, run=NO_PRIORS)


def renumbered(rows: list[list[str]]) -> list[list[str]]:
    return [[n, d.replace("_t1_", "_t8_").replace("_t2_", "_t9_")] for n, d in rows]


@pytest.mark.parametrize("previous", [None, REM_2], ids=["first-day", "rewritten"])
def test_rewritten_rem_file_needs_the_same_products(tmp_path, previous):
    assert compare_rem(tmp_path, REM_1, previous, renumbered(REM_1)) == []
    assert compare_rem(tmp_path, REM_1, previous, []) != []
    diffs = compare_rem(tmp_path, REM_1, previous, REM_1[:1] + REM_2)
    assert any("missing product" in d and "o002" in d for d in diffs)
    assert any("extra product" in d and "jw05555" in d for d in diffs)


def test_stale_rem_file_accepts_no_products_or_the_same_ones(tmp_path):
    assert compare_rem(tmp_path, REM_1, REM_1, []) == []
    assert compare_rem(tmp_path, REM_1, REM_1, renumbered(REM_1)) == []
    assert compare_rem(tmp_path, REM_1, REM_1, REM_2) != []


def test_rem_file_the_reference_never_wrote_must_be_empty(tmp_path):
    (tmp_path / "exp").mkdir()
    write_csv(tmp_path / "act" / "rem-tac.csv", REM_HEADER, [])
    assert compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=None, run=NO_PRIORS) == []
    write_csv(tmp_path / "act" / "rem-tac.csv", REM_HEADER, REM_2)
    assert compare_outputs(tmp_path / "exp", tmp_path / "act", previous_expected_dir=None, run=NO_PRIORS) != []


GOLDEN_CASES = [
    pytest.param(name, i, id=f"{name}/{day.date}", marks=marks)
    for name, marks in (("small-s2", ()), ("week-s3", (pytest.mark.slow,)))
    for i, day in enumerate(golden_days(name))
]


@pytest.mark.parametrize(("set_name", "index"), GOLDEN_CASES)
def test_golden_day_matches_itself_but_not_the_next_day(set_name, index):
    days = golden_days(set_name)
    day = days[index]
    assert compare_outputs(day.expected_dir, day.expected_dir,
                           previous_expected_dir=day.previous_expected_dir, run=day.run) == []
    if index + 1 < len(days):
        nxt = days[index + 1]
        assert compare_outputs(nxt.expected_dir, day.expected_dir,
                               previous_expected_dir=nxt.previous_expected_dir, run=nxt.run)
