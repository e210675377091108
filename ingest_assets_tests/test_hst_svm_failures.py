"""Failure modes of the SVM ingest (docs/hst-svm.md, "Failure modes"): unresolved targets, MAST outages, bad
catalogs, missing FITS, and combined training sets that always cover every visit in the output folder."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import pandas as pd
import pytest

from ingest_assets.defs import hst_svm
from ingest_assets.hst_svm import draw, mast, visits
from ingest_assets.hst_svm_cli import main
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, svm_resources, write_category_table

IBL738 = "hst_12286_38_wfc3_ir_total_ibl738"


@pytest.fixture
def inbox(tmp_path) -> Path:
    write_category_table(tmp_path / "mast.csv")
    return tmp_path / "inbox"


@pytest.fixture(autouse=True)
def no_env_override(monkeypatch):
    monkeypatch.delenv("HST_SVM_ALLOW_UNRESOLVED", raising=False)


def run(tmp_path: Path, *args: str) -> int:
    return main(["-i", str(tmp_path / "inbox"), "-o", str(tmp_path / "out"), "--mast-table", str(tmp_path / "mast.csv"),
                 *args])


def lines(capsys) -> dict[str, list[str]]:
    return {line.split("\t")[0]: line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()}


def indices(path: Path) -> list[str]:
    return list(pd.read_csv(path)["index"])


def failure_text(result: dg.ExecuteInProcessResult) -> list[str]:
    return [e.step_failure_data.user_failure_data.description for e in result.get_step_failure_events()
            if e.step_failure_data.user_failure_data]


# --- 9: unknown targets -----------------------------------------------------------------------------------------------
UNRESOLVED = ("visit ib4606: no MAST classification for target MYSTERY-1 in the offline MAST table {table}; "
              "allow unresolved targets (category U = 3) with --allow-unresolved-targets or HST_SVM_ALLOW_UNRESOLVED=1")


def test_an_unknown_target_fails_its_visit_by_default(tmp_path, inbox, capsys):
    build_visit(inbox, VARIANTS["ibl738"])
    build_visit(inbox, VARIANTS["ib4606"])
    assert run(tmp_path, "--no-draw") == 2
    out = lines(capsys)
    assert out["ib4606"] == ["FAILED", UNRESOLVED.format(table=tmp_path / "mast.csv")]
    assert out["ibl738"][0] == "ok"
    assert indices(tmp_path / "out" / "preprocessed.csv") == [IBL738]
    assert not (tmp_path / "out" / "svm_features" / "ib4606.csv").exists()


@pytest.mark.parametrize("how", ["flag", "env"])
def test_unknown_targets_are_coded_u_only_when_explicitly_allowed(tmp_path, inbox, capsys, monkeypatch, how):
    build_visit(inbox, VARIANTS["ib4606"])
    if how == "env":
        monkeypatch.setenv("HST_SVM_ALLOW_UNRESOLVED", "1")
    assert run(tmp_path, "--no-draw", *(["--allow-unresolved-targets"] if how == "flag" else [])) == 0
    status, detail = lines(capsys)["ib4606"]
    assert status == "ok" and "WARN category_resolved" in detail
    assert pd.read_csv(tmp_path / "out" / "svm_features" / "ib4606.csv")["cat"].tolist() == [3]


def test_the_dagster_resources_fail_unknown_targets_by_default(tmp_path):
    assert hst_svm.resources_from_env()["hst_svm_mast"].allow_unresolved_targets is False
    build_visit(tmp_path / "inbox", VARIANTS["ib4606"])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("hst_svm_visit", ["ib4606"])
    result = dg.materialize(hst_svm.VISIT_ASSETS[:3], partition_key="ib4606", instance=instance,
                            resources=svm_resources(tmp_path), raise_on_error=False)
    assert failure_text(result) == [UNRESOLVED.format(table=tmp_path / "mast_categories.csv")]


def test_help_states_the_default_mast_mode_and_the_allow_flag():
    done = subprocess.run([sys.executable, "-m", "ingest_assets.hst_svm_cli", "--help"], capture_output=True, text=True,
                          check=True)
    text = " ".join(done.stdout.split())
    assert "--allow-unresolved-targets" in text and "HST_SVM_ALLOW_UNRESOLVED" in text
    assert "default: offline" in text and "data/hst_svm/mast_categories.csv" in text
    assert "--strict-category" not in text


# --- 10: combined training sets ---------------------------------------------------------------------------------------
def test_the_cli_training_sets_hold_every_visit_of_the_output_folder(tmp_path, inbox, capsys):
    for name in ("ibl738", "j96029", "ic0k05"):
        build_visit(inbox, VARIANTS[name])
    assert run(tmp_path, "--no-draw", "-z", "j96029", "-z", "ibl738") == 0
    assert run(tmp_path, "--no-draw", "-z", "ic0k05") == 0  # a new ephemeral instance that knows only ic0k05
    expected = [IBL738, "hst_12500_05_wfc3_ir_total_ic0k05", "hst_12500_05_wfc3_uvis_total_ic0k05",
                "hst_10189_29_acs_sbc_total_j96029"]  # visits in name order, products in visit order
    assert indices(tmp_path / "out" / "preprocessed.csv") == expected
    assert indices(tmp_path / "out" / "raw_combined.csv") == expected
    assert lines(capsys)["training sets"] == ["ok", "preprocessed.csv 4 rows, raw_combined.csv 4 rows"]


def test_the_training_set_assets_read_the_visit_files_not_the_partitions(tmp_path):
    for name in ("ibl738", "j96029"):
        build_visit(tmp_path / "inbox", VARIANTS[name])
    for name in ("ibl738", "j96029"):  # each visit in its own instance
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("hst_svm_visit", [name])
        assert dg.materialize(hst_svm.VISIT_ASSETS[:3], partition_key=name, instance=instance,
                              resources=svm_resources(tmp_path)).success
    dg.materialize([*hst_svm.VISIT_ASSETS, *hst_svm.TRAINING_ASSETS], selection=hst_svm.TRAINING_ASSETS,
                   instance=instance, resources=svm_resources(tmp_path))
    assert indices(tmp_path / "out" / "preprocessed.csv") == [IBL738, "hst_10189_29_acs_sbc_total_j96029"]
    assert len(pd.read_csv(tmp_path / "out" / "raw_combined.csv")) == 2


def test_an_unreadable_visit_csv_fails_the_training_sets_by_name(tmp_path, inbox, capsys):
    build_visit(inbox, VARIANTS["ibl738"])
    (tmp_path / "out" / "svm_features").mkdir(parents=True)
    (tmp_path / "out" / "svm_features" / "zz9999.csv").write_text("numexp,index\n4,x\n")
    assert run(tmp_path, "--no-draw") == 2
    status, detail = lines(capsys)["training sets"]
    assert status == "FAILED" and detail.startswith("training sets: svm_features/zz9999.csv lacks the column(s) [")


# --- 11a: MAST outage -------------------------------------------------------------------------------------------------
def unreachable_mast(monkeypatch) -> list[dict]:
    """Make every live MAST query fail without waiting; return the list of queries asked."""
    asked: list[dict] = []

    def refuse(**criteria):
        asked.append(criteria)
        raise ConnectionError("HTTPSConnectionPool(host='mast.stsci.edu', port=443): Max retries exceeded\n(details)")

    monkeypatch.setattr(mast, "astroquery_criteria", lambda: refuse)
    monkeypatch.setattr(mast, "time", SimpleNamespace(sleep=lambda seconds: None))
    return asked


MAST_DOWN = ("visit ibl738: MAST lookup of target NGC-104 failed 3 times: ConnectionError: "
             "HTTPSConnectionPool(host='mast.stsci.edu', port=443): Max retries exceeded")


def test_a_mast_outage_shows_its_cause_in_one_line_without_waiting(tmp_path, inbox, capsys, monkeypatch):
    unreachable_mast(monkeypatch)
    build_visit(inbox, VARIANTS["ibl738"])
    started = time.monotonic()
    assert run(tmp_path, "--no-draw", "--mast", "live", "--mast-cache", str(tmp_path / "cache.json")) == 2
    assert time.monotonic() - started < 60  # no Dagster step retries (2 x 60 s) in the CLI
    assert lines(capsys)["ibl738"] == ["FAILED", MAST_DOWN]


@pytest.mark.parametrize("step_retries", [0, 1])
def test_a_mast_outage_is_retried_as_a_step_then_fails_the_asset_with_its_cause(tmp_path, monkeypatch, step_retries):
    asked = unreachable_mast(monkeypatch)
    build_visit(tmp_path / "inbox", VARIANTS["ibl738"])
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("hst_svm_visit", ["ibl738"])
    resources = svm_resources(tmp_path) | {"hst_svm_mast": hst_svm.MastCategoryResource(
        mode="live", cache_path=str(tmp_path / "cache.json"), step_retries=step_retries, step_retry_wait_seconds=0)}
    result = dg.materialize(hst_svm.VISIT_ASSETS[:2], partition_key="ibl738", instance=instance, resources=resources,
                            raise_on_error=False)
    assert failure_text(result) == [MAST_DOWN]
    assert len(asked) == 3 * (1 + step_retries)  # 3 attempts per query, per step attempt


# --- 11b: bad catalog -------------------------------------------------------------------------------------------------
def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:700])


def test_a_truncated_catalog_is_named_in_one_line(tmp_path):
    folder = build_visit(tmp_path, VARIANTS["ibl738"])
    catalog = folder / f"{IBL738}_point-cat.ecsv"
    truncate(catalog)
    with pytest.raises(visits.SvmInputError) as raised:
        draw.read_catalog(catalog)
    message = str(raised.value)
    assert message.startswith(f"cannot read catalog {IBL738}_point-cat.ecsv: ") and "\n" not in message
    assert "inconsistent with data columns" in message


def test_a_catalog_without_coordinates_is_named(tmp_path):
    folder = build_visit(tmp_path, VARIANTS["ibl738"])
    catalog = folder / f"{IBL738}_segment-cat.ecsv"
    catalog.write_text(catalog.read_text().replace("DEC", "DEJ2000"))
    with pytest.raises(visits.SvmInputError, match=f"catalog {IBL738}_segment-cat.ecsv lacks the column.*DEC"):
        draw.read_catalog(catalog)


def test_a_bad_catalog_fails_its_visit_and_keeps_it_out_of_the_training_sets(tmp_path, inbox, capsys):
    folder = build_visit(inbox, VARIANTS["ibl738"])
    build_visit(inbox, VARIANTS["j96029"])
    assert run(tmp_path, "--figsize", "4") == 0
    assert len(pd.read_csv(tmp_path / "out" / "preprocessed.csv")) == 2
    capsys.readouterr()
    truncate(folder / f"{IBL738}_point-cat.ecsv")
    assert run(tmp_path, "--figsize", "4", "-z", "ibl738") == 2
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith(
        f"ibl738\tFAILED\tvisit ibl738: cannot read catalog {IBL738}_point-cat.ecsv: Number of header columns")
    assert indices(tmp_path / "out" / "preprocessed.csv") == ["hst_10189_29_acs_sbc_total_j96029"]
    assert indices(tmp_path / "out" / "raw_combined.csv") == ["hst_10189_29_acs_sbc_total_j96029"]
    assert not (tmp_path / "out" / "svm_features" / "ibl738.csv").exists()
    assert not (tmp_path / "out" / "img" / IBL738).exists()


# --- 11c: missing FITS ------------------------------------------------------------------------------------------------
def test_a_missing_fits_is_named(tmp_path, inbox, capsys):
    (build_visit(inbox, VARIANTS["ibl738"]) / f"{IBL738}_drz.fits").unlink()
    assert run(tmp_path, "--no-draw", "-z", "ibl738") == 2
    assert lines(capsys)["ibl738"] == ["FAILED", f"visit ibl738: missing FITS {IBL738}_drz.fits (named by its QA JSON)"]


def test_an_inbox_visit_waits_for_the_fits_of_each_counted_product(tmp_path, inbox, capsys):
    folder = build_visit(inbox, VARIANTS["ic0k05"])
    (folder / "hst_12500_05_wfc3_uvis_total_ic0k05_drc.fits").unlink()
    assert run(tmp_path, "--no-draw") == 2
    assert lines(capsys)["ic0k05"] == ["SKIPPED", "missing hst_12500_05_wfc3_uvis_total_ic0k05_dr[zc].fits"]


def test_a_failed_blocking_check_is_named_and_withdraws_the_visit(tmp_path, inbox, capsys):
    folder = build_visit(inbox, VARIANTS["ic0k05"])
    build_visit(inbox, VARIANTS["ibl738"])
    assert run(tmp_path, "--no-draw") == 0
    capsys.readouterr()
    for path in folder.glob("*_uvis_total_ic0k05_*.json"):
        path.unlink()
    assert run(tmp_path, "-z", "ic0k05", "--no-draw") == 1
    status, detail = lines(capsys)["ic0k05"]
    assert status == "CHECK FAILED"
    assert detail.endswith("ERROR one_row_per_total_product (no QA JSON for hst_12500_05_wfc3_uvis_total_ic0k05)")
    assert indices(tmp_path / "out" / "preprocessed.csv") == [IBL738]  # the stale rows of ic0k05 are gone


# --- 11d: drc over drz ------------------------------------------------------------------------------------------------
def test_the_cte_corrected_drc_is_preferred_over_a_drz_of_the_same_product(tmp_path):
    folder = build_visit(tmp_path, VARIANTS["ib4606"])
    product = "hst_11665_06_wfc3_uvis_total_ib4606"
    (folder / f"{product}_drz.fits").write_bytes((folder / f"{product}_drc.fits").read_bytes())
    assert visits.total_products(folder) == {product: folder / f"{product}_drc.fits"}
