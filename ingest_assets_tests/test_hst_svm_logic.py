"""Pure SVM logic against synthetic visits: harvest, scrub, encodings, MAST lookups, inbox scanning, combining."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from astropy.table import Table

from ingest_assets.hst_svm import encode, harvest, mast, outputs, scrub, visits
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, write_category_table

HARVEST_COLUMNS = [  # spec 1.3: the 9 columns of a normal total product
    "header.TARGNAME", "header.RA_TARG", "header.DEC_TARG", "header.NUMEXP", "gen_info.imgname",
    "Number_of_GAIA_sources.Number_of_GAIA_sources", "number_of_sources.detector", "number_of_sources.point",
    "number_of_sources.segment",
]


def harvested(root: Path, name: str) -> pd.DataFrame:
    folder = build_visit(root, VARIANTS[name])
    return harvest.harvest_frame([harvest.read_qa_file(p) for p in harvest.find_qa_files(folder)], name)


def test_harvest_yields_the_nine_reference_columns(tmp_path):
    frame = harvested(tmp_path, "ibl738")
    assert list(frame.columns) == HARVEST_COLUMNS
    assert list(frame.index) == ["hst_12286_38_wfc3_ir_total_ibl738"]
    assert frame.iloc[0]["header.TARGNAME"] == "NGC-104"
    assert frame.iloc[0]["Number_of_GAIA_sources.Number_of_GAIA_sources"] == 12


def test_harvest_of_two_detectors_prefixes_comparisons_and_accepts_nan_tokens(tmp_path):
    frame = harvested(tmp_path, "ic0k05")
    assert list(frame.index) == ["hst_12500_05_wfc3_ir_total_ic0k05", "hst_12500_05_wfc3_uvis_total_ic0k05"]
    assert frame.loc["hst_12500_05_wfc3_ir_total_ic0k05", "hap_vs_hla_point_Cross-match_details.number_of_matches"] == 7
    assert pd.isna(frame.iloc[0]["distribution_stats.mean_offset"])
    assert not [c for c in frame.columns if c.startswith("GAIA_sources")]  # a serialized table contributes nothing


def test_crpt_rows_take_the_suffix_of_the_visit_dir_name_not_its_path(tmp_path):
    frame = harvested(tmp_path / "a_b_c", "ibl738_f160w_all_stoc")
    assert list(frame.index) == ["hst_12286_38_wfc3_ir_total_ibl738_f160w_all_stoc"]


def test_flatten_skips_data_unit_format_dtype_leaves_and_keeps_lists():
    payload = {"GAIA sources": {"RA": {"data": [1], "unit": "deg"}}, "a b": {"c": [1, 2], "format": "x"}, "n": 3}
    assert harvest.flatten(payload) == {"a_b.c": [1, 2], "n": 3}


def test_a_json_without_its_sections_is_reported_by_name(tmp_path):
    bad = tmp_path / "hst_1_01_wfc3_ir_total_ibxx01_svm_num_sources.json"
    bad.write_text(json.dumps({"header": {}, "data": {}}))
    with pytest.raises(visits.SvmInputError, match="ibxx01_svm_num_sources.json.*general information"):
        harvest.read_qa_file(bad)


def test_no_json_at_all_is_an_input_error(tmp_path):
    with pytest.raises(visits.SvmInputError, match="no QA JSON"):
        harvest.harvest_frame([], "ibl738")


def test_scrub_orders_columns_like_the_reference_and_sets_missing_gaia_to_zero(tmp_path):
    scrubbed = scrub.scrub(harvested(tmp_path, "ibq901"), "ibq901")
    assert list(scrubbed.columns) == ["detector", "dataset", "targname", "ra_targ", "dec_targ", "numexp", "imgname",
                                      "point", "segment", "gaia"]
    assert scrubbed.iloc[0][["detector", "dataset", "gaia"]].tolist() == ["ir", "ibq901", 0]


def test_scrub_refuses_rows_with_missing_required_fields(tmp_path):
    frame = harvested(tmp_path, "ic0k05")
    frame.loc["hst_12500_05_wfc3_uvis_total_ic0k05", "number_of_sources.point"] = float("nan")
    assert scrub.missing_required(frame) == {"hst_12500_05_wfc3_uvis_total_ic0k05": ["point"]}
    with pytest.raises(visits.SvmInputError, match="missing some data"):
        scrub.scrub(frame, "ic0k05")


@pytest.mark.parametrize("wcstype, reduced", [  # spec 1.4
    ("undistorted a posteriori solution aligned by visit to GAIAeDR3", "a posteriori"),
    ("undistorted a priori solution based on GSC240", "a priori"),
    ("pipeline default a priori solution based on GSC240", "default a"),
    ("undistorted not aligned", "not aligned"),
    ("pipeline default not aligned", "default not"),
    ("user-defined", ""),
    (0, 0),
])
def test_wcstype_keeps_its_second_and_third_words(wcstype, reduced):
    assert scrub.reduce_wcstype(wcstype) == reduced


def test_encodings_of_known_values_follow_the_reference_tables():
    frame = pd.DataFrame({
        "detector": ["hrc", "ir", "sbc", "uvis", "wfc", "wfc", "wfc", "wfc", "wfc", "wfc", "wfc", "wfc"],
        "wcstype": ["a posteriori", "a priori", "default a", "not aligned"] + ["a priori"] * 8,
        "category": ["CALIBRATION", "SOLAR SYSTEM", "ISM", "EXT-MEDIUM", "UNIDENTIFIED", "None",
                     "STELLAR CLUSTER;GLOBULAR CLUSTER", "EXT-CLUSTER", "STAR", "EXT-STAR", "CLUSTER OF GALAXIES",
                     "GALAXY;SPIRAL"],
    })
    coded = encode.encode(frame)
    assert coded["det"].tolist()[:5] == [0, 1, 2, 3, 4]
    assert coded["wcs"].tolist()[:4] == [0, 1, 2, 3]
    assert coded["cat"].tolist() == [0, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 7]
    assert encode.unknown_values(coded) == {}


def test_unknown_values_get_one_stable_code_per_column_whatever_else_is_in_the_batch():
    frame = pd.DataFrame({"detector": ["pc", "wfpc2", "ir"], "wcstype": [0, "default not", "a priori"],
                          "category": ["QUASAR", float("nan"), "PLANETARY NEBULA"]})
    coded = encode.encode(frame)
    assert coded[["det", "wcs", "cat"]].to_numpy().tolist() == [[5, 4, 8], [5, 4, 8], [1, 1, 8]]
    alone = encode.encode(frame.iloc[[1]])
    assert alone[["det", "wcs", "cat"]].to_numpy().tolist() == [[5, 4, 8]]
    assert encode.unknown_values(coded) == {"det": ["pc", "wfpc2"], "wcs": ["0", "default not"],
                                            "cat": ["<missing>", "PLANETARY NEBULA", "QUASAR"]}


def queries(*rows: tuple[str, str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["targname", "proposal", "ra", "dec"], index=[f"p{i}" for i in range(len(rows))])


def test_offline_table_resolves_by_name_and_each_any_target_by_its_own_box(tmp_path):
    table = mast.OfflineCategoryTable(write_category_table(tmp_path / "t.csv"))
    found = table.classify(queries(("NGC-104", "1", 0.0, 0.0), ("ANY", "9425", 53.1, -27.8),
                                   ("ANY", "9425", 53.4, -27.5), ("ANY", "9425", 60.0, 10.0), ("MYSTERY-1", "1", 0, 0)))
    assert found.iloc[:3].tolist() == ["STELLAR CLUSTER;GLOBULAR CLUSTER", "CLUSTER OF GALAXIES", "STAR;WHITE DWARF"]
    assert found.iloc[3:].isna().all()


def test_unresolved_categories_become_none_or_fail_when_strict(tmp_path):
    table = mast.OfflineCategoryTable(write_category_table(tmp_path / "t.csv"))
    asked = queries(("MYSTERY-1", "1", 0.0, 0.0), ("NGC-104", "1", 0.0, 0.0))
    assert mast.resolve_categories(asked, table, allow_unresolved=True).tolist() == [
        "None", "STELLAR CLUSTER;GLOBULAR CLUSTER"]
    with pytest.raises(mast.UnresolvedCategoryError, match="MYSTERY-1"):
        mast.resolve_categories(asked, table, allow_unresolved=False)


def test_a_missing_offline_table_is_a_clear_error(tmp_path):
    with pytest.raises(mast.MastConfigError, match="offline MAST category table"):
        mast.OfflineCategoryTable(tmp_path / "absent.csv")


class FlakyMast:
    """Stands in for Observations.query_criteria: fails `failures` times, then answers from `answers`."""

    def __init__(self, failures: int, answers: dict[str, list[str]]):
        self.failures, self.answers, self.calls = failures, answers, []

    def __call__(self, **criteria):
        self.calls.append(criteria)
        if len(self.calls) <= self.failures:
            raise ConnectionError("MAST unavailable")
        key = criteria.get("target_name") or criteria["proposal_id"]
        return Table({"target_classification": self.answers.get(key, [])}, dtype=[str])


def test_live_lookup_retries_caches_and_queries_each_target_once(tmp_path):
    cache = tmp_path / "cache.json"
    fake = FlakyMast(failures=2, answers={"NGC-104": ["", "STELLAR CLUSTER"], "9425": ["GALAXY"]})
    live = mast.LiveMastCategories(cache, retries=3, wait_seconds=0, query=fake)
    asked = queries(("NGC-104", "1", 0, 0), ("NGC-104", "1", 0, 0), ("ANY", "9425", 53.1, -27.8),
                    ("NOBODY", "1", 0, 0))
    found = live.classify(asked)
    assert found.iloc[:3].tolist() == ["STELLAR CLUSTER", "STELLAR CLUSTER", "GALAXY"] and pd.isna(found.iloc[3])
    assert len(fake.calls) == 2 + 3  # two failed attempts, then one query per distinct target
    assert fake.calls[3] == {"proposal_id": "9425", "s_ra": [53.1, 53.1 + 0.1], "s_dec": [-27.8, -27.8 + 0.1]}
    offline_again = mast.LiveMastCategories(cache, query=FlakyMast(failures=99, answers={}))
    assert offline_again.classify(asked).iloc[:3].tolist() == ["STELLAR CLUSTER", "STELLAR CLUSTER", "GALAXY"]
    assert json.loads(cache.read_text())["target:NOBODY"] is None


def test_live_lookup_gives_up_with_a_retryable_error(tmp_path):
    live = mast.LiveMastCategories(tmp_path / "c.json", retries=2, wait_seconds=0, query=FlakyMast(9, {}))
    with pytest.raises(mast.MastLookupError, match="failed 2 times.*MAST unavailable"):
        live.classify(queries(("NGC-104", "1", 0, 0)))
    assert not (tmp_path / "c.json").exists()


def test_live_lookup_without_astroquery_names_the_extra(tmp_path):
    try:
        import astroquery  # noqa: F401
        pytest.skip("astroquery is installed")
    except ImportError:
        pass
    live = mast.LiveMastCategories(tmp_path / "c.json", retries=1, wait_seconds=0)
    with pytest.raises(mast.MastConfigError, match=r"ingest_assets\[mast\]"):
        live.classify(queries(("NGC-104", "1", 0, 0)))


@pytest.mark.parametrize("name, real, crpt", [
    ("ibl738", True, False), ("ibl738_f160w_all_stoc", True, True), ("ibl738_f160w_sub_stat", True, True),
    ("IBL738", False, False), ("ibl73", False, False), ("ibl738_notes", False, False),
])
def test_visit_dir_names(name, real, crpt):
    assert visits.is_visit_name(name) is real
    assert visits.is_crpt(name) is crpt


def test_inbox_scan_waits_for_complete_and_settled_visits(tmp_path):
    inbox = tmp_path / "inbox"
    build_visit(inbox, VARIANTS["ibl738"])
    incomplete = build_visit(inbox, VARIANTS["ic0k05"])
    (incomplete / "hst_12500_05_wfc3_uvis_total_ic0k05_svm_num_sources.json").unlink()
    (inbox / "README.txt").write_text("not a visit")
    (inbox / "scratch").mkdir()
    fresh = visits.scan_inbox(inbox, now=time.time(), settle_seconds=60)
    assert fresh.ready == {} and "changed less than 60 s ago" in fresh.waiting["ibl738"]
    later = visits.scan_inbox(inbox, now=time.time() + 120, settle_seconds=60)
    assert list(later.ready) == ["ibl738"]
    assert later.waiting == {"ic0k05": "missing hst_12500_05_wfc3_uvis_total_ic0k05_svm_num_sources.json"}
    assert later.ignored == ["README.txt", "scratch"]


def test_fingerprint_changes_when_a_file_changes(tmp_path):
    folder = build_visit(tmp_path, VARIANTS["ibl738"])
    before = visits.visit_state(folder).fingerprint
    assert visits.visit_state(folder).fingerprint == before
    target = folder / "hst_12286_38_wfc3_ir_total_ibl738_point-cat.ecsv"
    os.utime(target, ns=(0, target.stat().st_mtime_ns - 10**9))
    assert visits.visit_state(folder).fingerprint != before


def test_combined_features_read_every_visit_file_in_name_order_keeping_each_value_and_the_label(tmp_path):
    real = pd.DataFrame({c: [1] for c in outputs.FEATURE_COLS}, index=pd.Index(["b"], name="index"))
    outputs.write_csv(real.assign(rms_ra=0.5), tmp_path / "ibl738.csv")
    outputs.write_csv(real.assign(label=1).set_axis(["a_x"]), tmp_path / "ibl738_f160w_all_stoc.csv")
    outputs.write_csv(real.set_axis(["c"]), tmp_path / "ab1234.csv")
    (tmp_path / "notes.csv").write_text("not,a,visit\n")
    combined = outputs.combine_features(tmp_path)
    assert list(combined.columns) == [*outputs.FEATURE_COLS, "label"]
    assert list(combined.index) == ["c", "b", "a_x"]
    assert outputs.with_index_column(combined).to_csv(index=False).splitlines()[1:] == [
        "1,1,1,1,1,1,1,1,1,1,,c", "1,0.5,1,1,1,1,1,1,1,1,,b", "1,1,1,1,1,1,1,1,1,1,1,a_x"]


def test_a_visit_file_without_the_columns_is_named(tmp_path):
    (tmp_path / "ibl738.csv").write_text("numexp,index\n4,x\n")
    with pytest.raises(visits.SvmInputError, match=r"ibl738.csv lacks the column\(s\) \['rms_ra'"):
        outputs.combine_features(tmp_path)
