"""`hst-svm-ingest`: one line per visit, exit 0 ok / 1 a check failed / 2 bad input or usage."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from ingest_assets.hst_svm_cli import main
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, write_category_table


@pytest.fixture
def inbox(tmp_path):
    write_category_table(tmp_path / "mast.csv")
    return tmp_path / "inbox"


def run(tmp_path, *args: str) -> int:
    return main(["-i", str(tmp_path / "inbox"), "-o", str(tmp_path / "out"), "--mast-table", str(tmp_path / "mast.csv"),
                 *args])


def lines(capsys) -> dict[str, list[str]]:
    return {line.split("\t")[0]: line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()}


def test_every_complete_visit_is_ingested_and_combined(tmp_path, inbox, capsys):
    for name in ("ibl738", "ib4606", "ic0k05"):
        build_visit(inbox, VARIANTS[name])
    assert run(tmp_path, "--no-draw", "--allow-unresolved-targets") == 0
    out = lines(capsys)
    assert out["ibl738"] == ["ok", "1 product(s), 6/6 checks passed"]
    assert out["ib4606"][0] == "ok" and "WARN category_resolved" in out["ib4606"][1]
    assert out["ic0k05"][1].startswith("2 product(s)")
    assert out["training sets"] == ["ok", "preprocessed.csv 4 rows, raw_combined.csv 4 rows"]
    assert len(pd.read_csv(tmp_path / "out" / "preprocessed.csv")) == 4
    assert not (tmp_path / "out" / "img").exists()


def test_one_visit_by_path_with_images(tmp_path, inbox, capsys):
    folder = build_visit(inbox, VARIANTS["ibl738"])
    build_visit(inbox, VARIANTS["j96029"])
    assert run(tmp_path, "-z", str(folder), "--figsize", "4") == 0
    assert list(lines(capsys)) == ["ibl738", "training sets"]
    assert len(list((tmp_path / "out" / "img" / "hst_12286_38_wfc3_ir_total_ibl738").glob("*.png"))) == 3


def test_a_failed_error_check_exits_1(tmp_path, inbox, capsys):
    folder = build_visit(inbox, VARIANTS["ic0k05"])
    for path in folder.glob("*_uvis_total_ic0k05_*.json"):
        path.unlink()
    assert run(tmp_path, "-z", "ic0k05", "--no-draw") == 1
    status, detail = lines(capsys)["ic0k05"]
    assert status == "CHECK FAILED" and "ERROR one_row_per_total_product" in detail


def test_bad_input_exits_2_and_fails_only_that_visit(tmp_path, inbox, capsys):
    build_visit(inbox, VARIANTS["ibl738"])
    for path in build_visit(inbox, VARIANTS["j96029"]).glob("*.json"):
        path.unlink()
    assert run(tmp_path, "-z", "ibl738", "-z", "j96029", "-z", "nope42", "--no-draw") == 2
    out = lines(capsys)
    assert out["nope42"][0] == "FAILED" and "no visit dir" in out["nope42"][1]
    assert out["j96029"] == ["FAILED", "visit j96029: no QA JSON found in visit j96029"]
    assert out["ibl738"][0] == "ok"
    assert list(pd.read_csv(tmp_path / "out" / "preprocessed.csv")["index"]) == ["hst_12286_38_wfc3_ir_total_ibl738"]


def test_incomplete_visits_in_the_inbox_are_skipped_with_the_reason(tmp_path, inbox, capsys):
    folder = build_visit(inbox, VARIANTS["ibl738"])
    (folder / "hst_12286_38_wfc3_ir_total_ibl738_svm_num_sources.json").unlink()
    assert run(tmp_path, "--no-draw") == 2
    assert lines(capsys)["ibl738"] == ["SKIPPED", "missing hst_12286_38_wfc3_ir_total_ibl738_svm_num_sources.json"]


def test_a_kept_instance_accumulates_visits_in_the_training_sets(tmp_path, inbox):
    build_visit(inbox, VARIANTS["ibl738"])
    build_visit(inbox, VARIANTS["j96029"])
    home = tmp_path / "dagster_home"
    home.mkdir()
    assert run(tmp_path, "-z", "ibl738", "--no-draw", "--dagster-home", str(home)) == 0
    assert run(tmp_path, "-z", "j96029", "--no-draw", "--dagster-home", str(home)) == 0
    assert len(pd.read_csv(tmp_path / "out" / "preprocessed.csv")) == 2


def test_help_documents_options_and_exit_codes():
    done = subprocess.run([sys.executable, "-m", "ingest_assets.hst_svm_cli", "--help"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    for word in ("--input", "--output", "--visit", "--json-pattern", "--no-draw", "--mast",
                 "--allow-unresolved-targets",
                 "--dagster-home", "Exit status", "HST_SVM_INBOX"):
        assert word in done.stdout


@pytest.mark.parametrize("argv", [["--mast", "sometimes"], ["-i", "no/such/inbox"]])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
