"""SVM assets through Dagster on synthetic visits: golden feature rows (spec 2.6 / 3.3), checks, images,
training sets, broken visits and idempotent re-ingest."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from PIL import Image

from ingest_assets.defs import hst_svm
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, svm_resources

FEATURE_HEADER = "numexp,rms_ra,rms_dec,nmatches,point,segment,gaia,det,wcs,cat,index"
RAW_HEADER = ("detector,dataset,targname,ra_targ,dec_targ,numexp,imgname,point,segment,gaia,rms_ra,rms_dec,nmatches,"
              "wcstype,category,cat,det,wcs,index")

# Expected svm_features CSV rows per visit. ibl738 is the reference's own row (spec 2.6); the others apply the
# spec's rules (1.4, 2.2-2.5, 3.3) to the fixture inputs.
GOLDEN = {
    "ibl738": ["4,0.5,0.4,42,30,25,12,1,0,4,hst_12286_38_wfc3_ir_total_ibl738"],
    # SBC -> det 2, "pipeline default a priori" -> wcs 2, ANY target: box query -> GALAXY -> cat 7
    "j96029": ["3,1.5,1.25,7,12,9,4,2,2,7,hst_10189_29_acs_sbc_total_j96029"],
    # no RMS/NMATCHES/WCSTYPE -> 0, 0, 0 and wcs unknown (4); target unknown to MAST -> "None" -> U = 3
    "ib4606": ["2,0,0,0,40,33,20,3,4,3,hst_11665_06_wfc3_uvis_total_ib4606"],
    # no gaia JSON in a single-product visit -> gaia 0
    "ibq901": ["4,0.5,0.4,42,30,25,0,1,0,4,hst_13001_01_wfc3_ir_total_ibq901"],
    # two detectors: two rows in product-name order
    "ic0k05": ["4,0.5,0.4,42,30,25,12,1,0,4,hst_12500_05_wfc3_ir_total_ic0k05",
               "2,0.75,0.5,18,40,33,20,3,0,4,hst_12500_05_wfc3_uvis_total_ic0k05"],
    # synthetic copy: suffixed index and label 1 before index
    "ibl738_f160w_all_stoc": ["4,0.5,0.4,42,30,25,12,1,0,4,1,hst_12286_38_wfc3_ir_total_ibl738_f160w_all_stoc"],
    # ACS/WFC -> det 4; M31-DISK -> GALAXY -> 7
    "jdw101": ["3,1.5,1.25,7,12,9,4,4,2,7,hst_14000_01_acs_wfc_total_jdw101"],
    # two ANY targets, each resolved by its own box: HRC -> STAR (5), WFC -> CLUSTER OF GALAXIES (6)
    "j8cw03": ["3,1.5,1.25,7,12,9,4,0,2,5,hst_9425_03_acs_hrc_total_j8cw03",
               "3,1.5,1.25,7,12,9,4,4,2,6,hst_9425_03_acs_wfc_total_j8cw03"],
    # deviation: the product without a gaia JSON keeps its row with gaia 0 (the reference drops it)
    "ic9x02": ["4,0.5,0.4,42,30,25,12,1,0,4,hst_12600_02_wfc3_ir_total_ic9x02",
               "2,0.0,0.0,0,40,33,0,3,4,4,hst_12600_02_wfc3_uvis_total_ic9x02"],
}
DATA_ASSETS = [hst_svm.svm_qa_harvest, hst_svm.svm_features_raw, hst_svm.svm_features]


def materialize_visit(root: Path, instance: dg.DagsterInstance, visit: str, draw: bool = False, figsize: float = 24,
                      **resource_kw):
    """Register `visit` and run the per-visit assets (images only when `draw`, on a `figsize` inch canvas)."""
    if not instance.has_dynamic_partition("hst_svm_visit", visit):
        instance.add_dynamic_partitions("hst_svm_visit", [visit])
    selection = [*DATA_ASSETS, hst_svm.svm_mosaic_images] if draw else DATA_ASSETS
    config = dg.RunConfig(ops={"svm_mosaic_images": hst_svm.DrawConfig(figsize=figsize)} if draw else {})
    return dg.materialize([*hst_svm.VISIT_ASSETS, hst_svm.images_present_and_readable], selection=selection,
                          partition_key=visit, resources=svm_resources(root, **resource_kw), instance=instance,
                          raise_on_error=False, run_config=config)


def materialize_training_sets(root: Path, instance: dg.DagsterInstance):
    return dg.materialize([*hst_svm.VISIT_ASSETS, *hst_svm.TRAINING_ASSETS], selection=hst_svm.TRAINING_ASSETS,
                          resources=svm_resources(root), instance=instance)


def checks_of(result) -> dict[str, tuple[bool, str]]:
    return {e.check_name: (e.passed, e.severity.value) for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    """Every fixture variant ingested (without images, unresolved targets allowed) into one instance."""
    root = tmp_path_factory.mktemp("svm")
    instance = dg.DagsterInstance.ephemeral()
    for visit in VARIANTS.values():
        build_visit(root / "inbox", visit)
    results = {name: materialize_visit(root, instance, name, allow_unresolved=True) for name in VARIANTS}
    return root, instance, results


@pytest.mark.parametrize("visit", sorted(GOLDEN))
def test_feature_rows_equal_the_golden_rows(ingested, visit):
    root, _, results = ingested
    assert results[visit].success
    lines = (root / "out" / "svm_features" / f"{visit}.csv").read_text().splitlines()
    header = FEATURE_HEADER.replace(",index", ",label,index") if visit.endswith("_stoc") else FEATURE_HEADER
    assert lines == [header, *GOLDEN[visit]]


# Expected svm_features_raw CSV rows (spec 2.2-2.4, 2.6): `dataset` is index token 6, or tokens 6+ for a crpt set.
GOLDEN_RAW = {
    "ibl738": "ir,ibl738,NGC-104,6.02,-72.08,4,hst_12286_38_wfc3_ir_total_ibl738_drz.fits,30,25,12,0.5,0.4,42,"
              "a posteriori,STELLAR CLUSTER;GLOBULAR CLUSTER,4,1,0,hst_12286_38_wfc3_ir_total_ibl738",
    "ibl738_f160w_all_stoc": "ir,ibl738_f160w_all_stoc,NGC-104,6.02,-72.08,4,"
                             "hst_12286_38_wfc3_ir_total_ibl738_drz.fits,30,25,12,0.5,0.4,42,a posteriori,"
                             "STELLAR CLUSTER;GLOBULAR CLUSTER,4,1,0,hst_12286_38_wfc3_ir_total_ibl738_f160w_all_stoc",
}


@pytest.mark.parametrize("visit", sorted(GOLDEN_RAW))
def test_raw_rows_equal_the_golden_rows(ingested, visit):
    lines = (ingested[0] / "out" / "svm_features_raw" / f"{visit}.csv").read_text().splitlines()
    assert lines == [RAW_HEADER, GOLDEN_RAW[visit]]


def test_raw_features_have_the_reference_columns_and_raw_values(ingested):
    root = ingested[0]
    raw = pd.read_csv(root / "out" / "svm_features_raw" / "ibl738.csv")
    assert ",".join(raw.columns) == RAW_HEADER
    row = raw.iloc[0]
    assert row["wcstype"] == "a posteriori" and row["category"] == "STELLAR CLUSTER;GLOBULAR CLUSTER"
    assert row["imgname"] == "hst_12286_38_wfc3_ir_total_ibl738_drz.fits" and row["dataset"] == "ibl738"
    harvest_header = (root / "out" / "svm_qa_harvest" / "ibl738.csv").read_text().splitlines()[0]
    assert harvest_header.split(",")[-1] == "index" and len(harvest_header.split(",")) == 10


@pytest.mark.parametrize("visit, failing", [
    ("ibl738", {}),
    ("ib4606", {"category_resolved": "WARN", "codes_in_range": "WARN"}),
    ("ibq901", {"gaia_count_present": "WARN"}),
    ("ic9x02", {"gaia_count_present": "WARN", "codes_in_range": "WARN"}),
])
def test_checks_flag_what_the_reference_hides(ingested, visit, failing):
    checks = checks_of(ingested[2][visit])
    assert set(checks) == {"one_row_per_total_product", "required_fields_present", "gaia_count_present",
                           "category_resolved", "codes_in_range", "values_in_range"}
    assert {name: severity for name, (passed, severity) in checks.items() if not passed} == failing


def test_unknown_code_check_names_the_raw_values(ingested):
    evaluation = next(e for e in ingested[2]["ib4606"].get_asset_check_evaluations()
                      if e.check_name == "codes_in_range")
    assert evaluation.metadata["unknown_raw_values"].value == {"wcs": ["0"]}


def test_training_sets_combine_every_visit_with_the_spec_columns(ingested):
    root, instance, _ = ingested
    result = materialize_training_sets(root, instance)
    assert checks_of(result) == {"unique_index": (True, "ERROR")}
    combined = pd.read_csv(root / "out" / "preprocessed.csv")
    assert ",".join(combined.columns) == FEATURE_HEADER.replace(",index", ",label,index")
    assert sorted(combined["index"]) == sorted(row.rsplit(",", 1)[1] for rows in GOLDEN.values() for row in rows)
    assert combined.set_index("index").loc["hst_12286_38_wfc3_ir_total_ibl738_f160w_all_stoc", "label"] == 1
    raw = pd.read_csv(root / "out" / "raw_combined.csv")
    assert ",".join(raw.columns) == RAW_HEADER.replace(",index", ",label,index") or ",".join(raw.columns) == RAW_HEADER
    assert len(raw) == len(combined)


def test_images_have_the_reference_layout_and_size(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    build_visit(tmp_path / "inbox", VARIANTS["ibl738_f160w_all_stoc"])
    build_visit(tmp_path / "inbox", VARIANTS["jdw101"])  # exact `Flags` column: crashes the reference's drawing
    for visit in ("ibl738_f160w_all_stoc", "jdw101"):
        result = materialize_visit(tmp_path, instance, visit, draw=True)
        assert result.success and checks_of(result)["images_present_and_readable"] == (True, "ERROR")
    img = tmp_path / "out" / "img"
    assert sorted(p.relative_to(img).as_posix() for p in img.rglob("*.png")) == [
        f"{name}/{name}{suffix}.png" for name in ("hst_12286_38_wfc3_ir_total_ibl738_f160w_all_stoc",
                                                   "hst_14000_01_acs_wfc_total_jdw101")
        for suffix in ("", "_gaia", "_source")]
    for png in img.rglob("*.png"):
        with Image.open(png) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (1868, 1868))  # spec 2.7, 64x64 data
    plain = Image.open(img / "hst_14000_01_acs_wfc_total_jdw101" / "hst_14000_01_acs_wfc_total_jdw101.png")
    overlay = Image.open(img / "hst_14000_01_acs_wfc_total_jdw101" / "hst_14000_01_acs_wfc_total_jdw101_source.png")
    assert plain.tobytes() != overlay.tobytes()  # the sources are drawn


def test_images_of_a_wide_product_follow_the_data_aspect(tmp_path):
    spec = VARIANTS["ibl738"].products[0]
    build_visit(tmp_path / "inbox", type(VARIANTS["ibl738"])("ibl738", (type(spec)(shape=(60, 100)),)))
    result = materialize_visit(tmp_path, dg.DagsterInstance.ephemeral(), "ibl738", draw=True)
    assert result.success
    folder = tmp_path / "out" / "img" / "hst_12286_38_wfc3_ir_total_ibl738"
    with Image.open(folder / "hst_12286_38_wfc3_ir_total_ibl738_gaia.png") as image:
        assert image.size == (1880, 1128)  # spec 2.7: 60x100 -> 1880x1128


def test_a_broken_visit_fails_alone_and_clearly(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    inbox = tmp_path / "inbox"
    build_visit(inbox, VARIANTS["ibl738"])
    no_json = build_visit(inbox, VARIANTS["j96029"])
    for path in no_json.glob("*.json"):
        path.unlink()
    bad_fits = build_visit(inbox, VARIANTS["ib4606"])
    (bad_fits / "hst_11665_06_wfc3_uvis_total_ib4606_drc.fits").write_bytes(b"SIMPLE  = garbage")

    failed_json = materialize_visit(tmp_path, instance, "j96029")
    assert not failed_json.success
    assert "visit j96029: no QA JSON found" in failure_text(failed_json)
    failed_fits = materialize_visit(tmp_path, instance, "ib4606")
    assert not failed_fits.success
    assert "cannot read the SCI header of hst_11665_06_wfc3_uvis_total_ib4606_drc.fits" in failure_text(failed_fits)
    assert materialize_visit(tmp_path, instance, "ibl738").success
    materialize_training_sets(tmp_path, instance)
    assert list(pd.read_csv(tmp_path / "out" / "preprocessed.csv")["index"]) == ["hst_12286_38_wfc3_ir_total_ibl738"]


def failure_text(result) -> str:
    return " ".join(e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events()
                    if e.step_failure_data.user_failure_data)


def test_missing_counts_block_the_visit_before_features(tmp_path):
    folder = build_visit(tmp_path / "inbox", VARIANTS["ic0k05"])
    (folder / "hst_12500_05_wfc3_uvis_total_ic0k05_svm_num_sources.json").unlink()
    result = materialize_visit(tmp_path, dg.DagsterInstance.ephemeral(), "ic0k05")
    assert not result.success
    assert checks_of(result)["required_fields_present"] == (False, "ERROR")
    assert not (tmp_path / "out" / "svm_features" / "ic0k05.csv").exists()


def test_a_product_without_any_json_fails_the_row_count_check(tmp_path):
    folder = build_visit(tmp_path / "inbox", VARIANTS["ic0k05"])
    for path in folder.glob("*_uvis_total_ic0k05_*.json"):
        path.unlink()
    result = materialize_visit(tmp_path, dg.DagsterInstance.ephemeral(), "ic0k05")
    assert checks_of(result)["one_row_per_total_product"] == (False, "ERROR")
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "one_row_per_total_product")
    assert evaluation.metadata["missing"].value == ["hst_12500_05_wfc3_uvis_total_ic0k05"]


def test_an_unresolved_target_fails_its_visit_unless_allowed(tmp_path):
    build_visit(tmp_path / "inbox", VARIANTS["ib4606"])
    result = materialize_visit(tmp_path, dg.DagsterInstance.ephemeral(), "ib4606")
    assert not result.success
    assert "MYSTERY-1" in failure_text(result)


def test_reingest_is_idempotent_and_drops_images_of_removed_products(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    folder = build_visit(tmp_path / "inbox", VARIANTS["ic0k05"])
    out = tmp_path / "out"
    assert materialize_visit(tmp_path, instance, "ic0k05", draw=True, figsize=4).success
    first = {p: p.read_bytes() for p in out.glob("svm_*/*.csv")}
    assert materialize_visit(tmp_path, instance, "ic0k05").success
    assert {p: p.read_bytes() for p in out.glob("svm_*/*.csv")} == first
    materialize_training_sets(tmp_path, instance)
    assert len(pd.read_csv(out / "preprocessed.csv")) == 2

    for path in folder.glob("*_uvis_total_ic0k05*"):
        path.unlink()
    assert materialize_visit(tmp_path, instance, "ic0k05", draw=True, figsize=4).success
    assert sorted(p.name for p in (out / "img").iterdir()) == ["hst_12500_05_wfc3_ir_total_ic0k05"]
    materialize_training_sets(tmp_path, instance)
    assert list(pd.read_csv(out / "preprocessed.csv")["index"]) == ["hst_12500_05_wfc3_ir_total_ic0k05"]
    assert (folder / "hst_12500_05_wfc3_ir_total_ic0k05_drz.fits").exists()  # inputs are never deleted


def test_definitions_expose_one_prefixed_group():
    defs = hst_svm.defs
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert {graph.get(k).group_name for k in graph.get_all_asset_keys()} == {"hst_svm"}
    assert all(key.startswith("hst_svm_") for key in defs.resources)
    assert defs.resolve_job_def("hst_svm_visit_job") and defs.resolve_sensor_def("hst_svm_visit_sensor")


def test_resources_read_their_folders_from_the_environment(monkeypatch):
    monkeypatch.setenv("HST_SVM_INBOX", "somewhere/inbox")
    monkeypatch.delenv("HST_SVM_OUTPUT", raising=False)
    found = hst_svm.resources_from_env()
    assert found["hst_svm_storage"].inbox == Path("somewhere/inbox")
    assert found["hst_svm_storage"].output == Path("data/hst_svm/out")


def test_training_sets_of_registered_but_unprocessed_visits_are_empty(tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("hst_svm_visit", ["ibl738"])
    materialize_training_sets(tmp_path, instance)
    assert (tmp_path / "out" / "preprocessed.csv").read_text().splitlines() == [FEATURE_HEADER]
