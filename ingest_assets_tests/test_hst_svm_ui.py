"""A visit folder dropped into the SVM inbox is ingested by the sensor of a running `dagster dev`."""

from __future__ import annotations

import dagster as dg
import pytest

from ingest_assets_tests.dagster_dev import dagster_dev, folder_env, wait_for
from ingest_assets_tests.svm_fixtures import VARIANTS, build_visit, write_category_table

INGEST_TIMEOUT = 150


def materialized(home, visit: str) -> bool:
    """True once the visit's images (the last per-visit asset) and then the training sets are materialized."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return visit in instance.get_materialized_partitions(dg.AssetKey("svm_mosaic_images")) and bool(
            instance.get_latest_materialization_event(dg.AssetKey("svm_training_set")))


@pytest.mark.ui
def test_a_dropped_visit_is_ingested_and_joins_the_training_sets(tmp_path):
    home, inbox, out = tmp_path / "dagster_home", tmp_path / "svm" / "inbox", tmp_path / "svm" / "out"
    inbox.mkdir(parents=True)
    env = folder_env(tmp_path) | {
        "HST_SVM_SETTLE_SECONDS": "1", "HST_SVM_MAST_TABLE": str(write_category_table(tmp_path / "mast.csv")),
    }
    log = tmp_path / "dagster_dev.log"
    with dagster_dev(home, env, log) as server:
        build_visit(tmp_path / "drop", VARIANTS["ibl738"]).rename(inbox / "ibl738")
        ingested = wait_for(lambda: materialized(home, "ibl738"), INGEST_TIMEOUT, server)
    assert ingested, log.read_text()[-3000:]
    features = (out / "svm_features" / "ibl738.csv").read_text().splitlines()
    assert features[1] == "4,0.5,0.4,42,30,25,12,1,0,4,hst_12286_38_wfc3_ir_total_ibl738"
    assert len(list((out / "img" / "hst_12286_38_wfc3_ir_total_ibl738").glob("*.png"))) == 3
    assert (out / "preprocessed.csv").read_text().splitlines()[1].endswith(",hst_12286_38_wfc3_ir_total_ibl738")
