"""The ingest rules of spec Part A, one behaviour per test, on small hand-made drops."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ingest_assets.jwst_cal.day import CODES_TABLE, DayTables, ingest_day
from ingest_assets.jwst_cal.products import group_exposures
from ingest_assets.jwst_cal.scrub import scrub_drop

from .jwst_rows import frame, l1, l3

DAY1, DAY2 = dt.date(2025, 6, 1), dt.date(2025, 6, 2)


def scrub(rows, day=DAY1):
    return scrub_drop(frame(rows), day, f"{day}_{day.timetuple().tm_yday:03d}.csv")


def run_days(*days_rows, save_l1=False):
    """Ingest consecutive days on in-memory tables (whole tables as tails); return the results and the final tables."""
    tables, results = DayTables.empty(), []
    for i, rows in enumerate(days_rows):
        result = ingest_day(scrub(rows, DAY1 + dt.timedelta(days=i)), tables, save_l1=save_l1)
        tables = DayTables(result.tails, pd.concat([tables.codes, result.log[CODES_TABLE]]))
        results.append(result)
    return results, {**tables.tails, CODES_TABLE: tables.codes}


def product_names(rows):
    science = scrub(rows).science
    grouped = group_exposures(science)
    return dict(zip(grouped["product"], grouped["bucket"]))


# --- initial scrub ---------------------------------------------------------------------------------------------------

def test_scrub_strips_fits_suffix_and_keeps_latest_largest_duplicate():
    rows = [
        l1("jw01234001001_02101_00001_nrca1_uncal.fits"),
        l3("jw01234-o001_t001_nircam_clear-f200w", 100.0),
        l3("jw01234-o001_t001_nircam_clear-f200w", 300.0),
        l3("jw01234-o001_t001_nircam_clear-f200w", 200.0),
    ]
    science = scrub(rows).science
    assert list(science["dname"]) == ["jw01234-o001_t001_nircam_clear-f200w", "jw01234001001_02101_00001_nrca1"]
    assert science.loc[0, "imagesize"] == 300.0


def test_scrub_drops_level2_memory_estimates_and_non_l3_types():
    rows = [
        l1("jw01234001001_02101_00001_nrca1"),
        {**l1("jw01234001001_02101_00001_nrca2"), "DagNodeName": "LEVEL_2"},
        {**l3("jw01234-o001_t001_nircam_clear-f200w", 5.0), "DagNodeName": "ESTIMATE_LEVEL_3_MEMORY"},
        l1("jw01234001001_02101_00001_nrca3", EXP_TYPE="NRS_TACQ"),
    ]
    assert list(scrub(rows).science["dname"]) == ["jw01234001001_02101_00001_nrca1"]


def test_params_skip_missing_values_and_wfsc_rows_come_last():
    rows = [
        l1("jw04509102001_02101_00001_nrca3", VISITYPE="PRIME_WFSC_SENSING_ONLY", FILTER="F212N", PUPIL="WLM8",
           DETECTOR="NRCA3", OBSERVTN="102", PROGRAM="04509"),
        l1("jw01234001001_02101_00001_nrca1"),
    ]
    science = scrub(rows).science
    assert list(science["params"]) == ["1234-001-F200W-CLEAR-FULL-NRC_IMAGE", "4509-102-F212N-WLM8-NRCA3"]


def test_miri_ifu_suffix_and_ch2_ch4_l3_drop():
    mrs = dict(INSTRUME="MIRI", EXP_TYPE="MIR_MRS", FILTER="NONE", PUPIL="NONE", BAND="SHORT", PROGRAM="02222",
               OBSERVTN="007")
    rows = [
        l1("jw02222007001_02101_00001_mirifushort", DETECTOR="MIRIFUSHORT", CHANNEL="12", **mrs),
        l3("jw02222-o007_t1_miri_ch1-short", 5.0, DETECTOR="MIRIFUSHORT", CHANNEL="1", **mrs),
        l3("jw02222-o007_t1_miri_ch2-short", 5.0, DETECTOR="MIRIFUSHORT", CHANNEL="2", **mrs),
    ]
    scrubbed = scrub(rows)
    assert scrubbed.mrs_ch24_dropped == 1
    assert set(scrubbed.science["params"]) == {"2222-007-FULL-MIR_MRS-SHORT-12"}
    assert scrubbed.science["CHANNEL"].tolist().count("12") == 1  # CHANNEL stays text (D6)


def test_mosaics_are_split_off_with_their_original_name():
    rows = [l3("jw01234-c1001_t001_nircam_clear-f200w_i2d.fits", 7.0), l1("jw01234001001_02101_00001_nrca1")]
    scrubbed = scrub(rows)
    assert scrubbed.mosaics["Dataset"].tolist() == ["jw01234-c1001_t001_nircam_clear-f200w_i2d.fits"]
    assert scrubbed.mosaics.columns[-1] == "Dataset"
    assert "jw01234-c1001_t001_nircam_clear-f200w" not in set(scrubbed.science["dname"])


# --- product naming and routing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("values, name, bucket", [
    (dict(PROGRAM="01111", OBSERVTN="005", INSTRUME="NIRSPEC", DETECTOR="NRS1", EXP_TYPE="NRS_FIXEDSLIT",
          FILTER="F290LP", PUPIL="NONE", GRATING="G395M", FXD_SLIT="S200A1", SUBARRAY="SUBS200A1", CHANNEL="NONE"),
     "jw01111-o005_s000000001_nirspec_f290lp-g395m-s200a1-subs200a1", "SPEC"),
    (dict(PROGRAM="01386", OBSERVTN="002", EXP_TYPE="NRC_CORON", FILTER="F335M", PUPIL="MASKRND",
          SUBARRAY="SUB320A335R", CHANNEL="LONG", DETECTOR="NRCALONG"),
     "jw01386-o002_t1_nircam_maskrnd-f335m-sub320a335r-image3", "TAC"),
    (dict(PROGRAM="01571", OBSERVTN="020", EXP_TYPE="NRC_WFSS", FILTER="F444W", PUPIL="GRISMR",
          VISITYPE="PARALLEL_PURE", TARGNAME="NONE", CHANNEL="LONG", DETECTOR="NRCALONG"),
     "jw01571-o020_t0_nircam_f444w-grismr", "SPEC"),
    (dict(PROGRAM="02222", OBSERVTN="007", INSTRUME="MIRI", EXP_TYPE="MIR_MRS", FILTER="NONE", PUPIL="NONE",
          DETECTOR="MIRIFUSHORT", CHANNEL="12", BAND="SHORT"),
     "jw02222-o007_t1_miri_ch1-short", "SPEC"),
    (dict(PROGRAM="01151", OBSERVTN="003", INSTRUME="FGS", EXP_TYPE="FGS_IMAGE", FILTER="NONE", PUPIL="NONE",
          DETECTOR="GUIDER1", CHANNEL="NONE"),
     "jw01151-o003_t1_fgs_", "FGS"),
    (dict(PROGRAM="01151", OBSERVTN="003", INSTRUME="FGS", EXP_TYPE="FGS_IMAGE", FILTER="NONE", PUPIL="NONE",
          DETECTOR="GUIDER1", CHANNEL="NONE", TSOVISIT="True"),  # D15: never TAC
     "jw01151-o003_t1_fgs_", "FGS"),
    (dict(PROGRAM="04509", OBSERVTN="102", VISITYPE="PRIME_WFSC_SENSING_ONLY", FILTER="F212N", PUPIL="WLM8",
          DETECTOR="NRCA3"),
     "jw04509-o102_t1_nircam_f212n-wlm8-nrca3", "IMAGE"),
])
def test_product_names_and_buckets(values, name, bucket):
    assert product_names([l1("jw0000000000_00000_00001_x", **values)]) == {name: bucket}


def test_exposures_without_product_stay_unassigned():
    rows = [
        l1("jw04509102001_02101_00001_nrca3", VISITYPE="PRIME_WFSC_SENSING_ONLY", SUBARRAY="SUB32TATS"),
        l1("jw03333001001_02101_00001_mirimage", INSTRUME="MIRI", EXP_TYPE="MIR_LRS-SLITLESS", TSOVISIT="False",
           PROGRAM="03333", CHANNEL="NONE"),
    ]
    assert product_names(rows) == {}


def test_fake_target_ids_are_numbered_in_sorted_order():  # D1
    rows = [
        l1("jw01234001001_02101_00001_nrca1", TARGNAME="ZZZ", VISITYPE="PRIME_TARGETED_MOVING"),
        l1("jw01234001001_02101_00001_nrca2", TARGNAME="AAA", FILTER="F150W", VISITYPE="PRIME_TARGETED_MOVING"),
    ]
    assert set(product_names(rows)) == {"jw01234-o001_t2_nircam_clear-f200w", "jw01234-o001_t1_nircam_clear-f150w"}


# --- matching, priors, reprocessed products ---------------------------------------------------------------------------

def group(prefix="jw01234001001_02101", n=3, **values):
    return [l1(f"{prefix}_0000{i}_nrca{i}", CRVAL1=10.0 + i * 1e-4, DETECTOR=f"NRCA{i}", **values)
            for i in range(1, n + 1)]


def test_same_day_match_writes_training_rows():
    (day,), state = run_days(group() + [l3("jw01234-o001_t001_nircam_clear-f200w", 2_500_000.0)])
    assert day.outcome.report.match_rate == 1.0 and day.outcome.report.l3_unmatched == ()
    train = state["train-image"]
    assert train[["dname", "pname", "Dataset"]].values.tolist() == [[
        "jw01234-o001_t1_nircam_clear-f200w", "jw01234-o001_t001_nircam_clear-f200w",
        "jw01234-o001_t001_nircam_clear-f200w"]]
    assert train.loc[0, "imgsize_gb"] == 2.5 and train.loc[0, "nexposur"] == 3 and train.loc[0, "detector"] == 12
    assert state["training"]["pname"].tolist() == ["jw01234-o001_t001_nircam_clear-f200w"]
    assert state["ingest"].empty


def test_l3_arriving_a_day_after_its_inputs_matches_through_priors():
    (first, second), state = run_days(group(), [l3("jw01234-o001_t001_nircam_clear-f200w", 1e6)])
    assert first.outcome.report.backlog == 3 and first.outcome.report.l3_total == 0
    assert second.outcome.report.priors_pulled == 3 and second.outcome.report.l3_matched == 1
    assert len(state["ingest"]) == 0 and len(state["train-image"]) == 1
    assert state["train-image"].loc[0, "date"] == "2025-06-02"


def test_multi_match_takes_the_first_name_and_reports_the_loser():
    rows = group() + [l3("jw01234-o001_t002_nircam_clear-f200w", 1.0), l3("jw01234-o001_t001_nircam_clear-f200w", 2.0)]
    (day,), state = run_days(rows)
    assert day.outcome.products["pname"].tolist() == ["jw01234-o001_t001_nircam_clear-f200w"]
    assert day.outcome.report.multi_match_losers == ("jw01234-o001_t002_nircam_clear-f200w",)
    assert day.outcome.report.l3_unmatched == ("jw01234-o001_t002_nircam_clear-f200w",)
    loser = state["ingest"].set_index("dname").loc["jw01234-o001_t002_nircam_clear-f200w"]
    assert loser["expmode"] == "IMAGE"


def test_targname_mismatch_falls_back_to_params():
    rows = group(TARGNAME="NGC-1") + [l3("jw01234-o001_t001_nircam_clear-f200w", 1.0, TARGNAME="OTHER")]
    (day,), _ = run_days(rows)
    assert day.outcome.report.l3_matched == 1


def test_reprocessed_product_alone_updates_training_in_place():  # D3, A.1.6
    name = "jw01234-o001_t001_nircam_clear-f200w"
    (_, repro), state = run_days(group() + [l3(name, 1e6)], [l3(name, 3e6)])
    assert repro.outcome.report.reprocessed == (name,) and repro.outcome.report.l3_unmatched == ()
    assert state["training"][["imagesize", "date", "doy"]].values.tolist() == [[3e6, "2025-06-02", 153]]
    assert state["train-image"][["imagesize", "date", "imgsize_gb"]].values.tolist() == [[3e6, "2025-06-02", 3.0]]
    assert state["ingest"].empty


def test_unseen_categories_get_stable_codes_across_days():  # D12
    name = "jw01234-o001_t001_nircam_f999x"
    day1 = group(FILTER="F999X", PUPIL="NONE") + [l3(name, 1.0, FILTER="F999X", PUPIL="NONE")]
    day2 = (group(prefix="jw01234002001_02101", FILTER="F998X", PUPIL="NONE", OBSERVTN="002")
            + [l3("jw01234-o002_t001_nircam_f998x", 1.0, FILTER="F998X", PUPIL="NONE", OBSERVTN="002")])
    day3 = (group(prefix="jw01234003001_02101", FILTER="F999X", PUPIL="NONE", OBSERVTN="003")
            + [l3("jw01234-o003_t001_nircam_f999x", 1.0, FILTER="F999X", PUPIL="NONE", OBSERVTN="003")])
    _, state = run_days(day1, day2, day3)
    assert state["train-image"]["filter"].tolist() == [52, 53, 52]
    assert state["category_codes"][["value", "code"]].values.tolist() == [["F999X", 52], ["F998X", 53]]


def test_lower_case_true_counts_as_true():  # D11
    rows = group(BKGDTARG="true") + [l3("jw01234-o001_t001_nircam_clear-f200w", 1.0)]
    _, state = run_days(rows)
    assert state["train-image"].loc[0, "bkgdtarg"] == 1


def test_nan_fiducial_is_left_out_of_the_statistics():  # D5
    exposures = group(n=3)
    exposures[1]["CRVAL1"] = np.nan
    (day,), state = run_days(exposures + [l3("jw01234-o001_t001_nircam_clear-f200w", 1.0)])
    assert state["train-image"].loc[0, "nexposur"] == 2
    assert day.log["raw-image"].iloc[0]["NEXPOSUR"] == 2


def test_group_without_any_valid_fiducial_gets_zero_offsets():  # D5
    exposures = [{**row, "CRVAL1": np.nan} for row in group(n=2)]
    _, state = run_days(exposures + [l3("jw01234-o001_t001_nircam_clear-f200w", 1.0)])
    row = state["train-image"].iloc[0]
    assert row[["offset", "max_offset", "mean_offset", "sigma_offset"]].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_day_without_science_rows_adds_nothing():  # D16
    (day,), state = run_days([{**l1("jw01234001001_02101_00001_nrca1"), "DagNodeName": "LEVEL_2"}])
    assert day.outcome.report.l3_total == 0 and day.outcome.report.match_rate == 1.0
    assert all(state[name].empty for name in ("ingest", "training", "train-image"))


def test_ptf_product_with_two_pointings_of_a_shared_name_is_split_last():  # 3.4 d
    rows = [
        l1("jw01234001001_02101_00001_nrca1", TARGNAME="X", TARG_RA=10.0, TARG_DEC=20.0),
        l1("jw01234001001_02101_00002_nrca1", TARGNAME="X", TARG_RA=11.0, TARG_DEC=21.0),
        l1("jw05555001001_02101_00001_nrca1", TARGNAME="X", PROGRAM="05555", VISITYPE="PRIME_UNTARGETED"),
    ]
    grouped = group_exposures(scrub(rows).science)
    assert grouped.drop_duplicates("order")["product"].tolist() == [
        "jw05555-o001_t1_nircam_clear-f200w",
        "jw01234-o001_t1x0_nircam_clear-f200w",
        "jw01234-o001_t1x1_nircam_clear-f200w",
    ]
    assert grouped.groupby("product")["TARG_RA"].first().to_dict() == {
        "jw05555-o001_t1_nircam_clear-f200w": 10.0,
        "jw01234-o001_t1x0_nircam_clear-f200w": 10.0,
        "jw01234-o001_t1x1_nircam_clear-f200w": 11.0,
    }
