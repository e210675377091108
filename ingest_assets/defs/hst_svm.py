"""Dagster wiring of the HST SVM alignment ingest (group `hst_svm`): per-visit assets on dynamic partitions,
combined training sets, checks, an inbox sensor, jobs, a daily schedule and the resources."""

# No `from __future__ import annotations` here: Dagster resolves Config and resource parameter annotations at
# decoration time and cannot resolve them from strings.

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pandas as pd

from ingest_assets.defs.folders import IngestFolders
from ingest_assets.hst_svm import harvest, mast, outputs, scrub
from ingest_assets.hst_svm.constants import (
    DEFAULT_JSON_PATTERN,
    GAIA_FIELD,
    UNKNOWN_CODES,
    UNRESOLVED_CATEGORY,
)
from ingest_assets.hst_svm.draw import draw_product, product_files
from ingest_assets.hst_svm.encode import unknown_values
from ingest_assets.hst_svm.visits import (
    SvmInputError,
    first_line,
    index_product,
    product_index,
    scan_inbox,
    total_products,
)

GROUP = "hst_svm"
visit_partitions = dg.DynamicPartitionsDefinition(name="hst_svm_visit")
# Per-visit assets whose CSVs feed the training sets; a failed visit run removes its files there.
FEATURES, FEATURES_RAW = "svm_features", "svm_features_raw"
ALLOW_UNRESOLVED_ENV = "HST_SVM_ALLOW_UNRESOLVED"
ALLOW_UNRESOLVED_HINT = (f"allow unresolved targets (category U = 3) with --allow-unresolved-targets or "
                         f"{ALLOW_UNRESOLVED_ENV}=1")


# --- resources ------------------------------------------------------------------------------------------------------
class SvmStorage(IngestFolders):
    """Folders of the SVM ingest: the inbox of visit dirs and the output root; `settle_seconds` of quiet before a
    complete visit dir counts as ready."""

    settle_seconds: float = 5.0

    def visit_dir(self, visit: str) -> Path:
        """The inbox dir of a visit; a clear failure when it is gone."""
        folder = self.inbox / visit
        if not folder.is_dir():
            raise dg.Failure(description=f"visit {visit}: no folder {folder}")
        return folder

    def asset_csv(self, asset: str, visit: str) -> Path:
        """Per-visit CSV of an asset: <output>/<asset>/<visit>.csv."""
        return self.output / asset / f"{visit}.csv"

    @property
    def img_root(self) -> Path:
        return self.output / "img"

    def withdraw(self, visit: str) -> None:
        """Remove a visit's feature CSVs and image folders, so that the training sets leave out a failed visit."""
        for asset in (FEATURES_RAW, FEATURES):
            self.asset_csv(asset, visit).unlink(missing_ok=True)
        outputs.remove_stale_images(self.img_root, visit, keep=set())


class MastCategoryResource(dg.ConfigurableResource):
    """MAST target classification: `offline` reads a local table of MAST observation rows; `live` asks MAST through
    astroquery (extra `mast`) with `retries` attempts per query and a persistent cache, and a failed lookup is
    retried as a step `step_retries` times. A target without classification fails its visit, unless
    `allow_unresolved_targets`: then it becomes "None" (code U=3) and a WARN check reports it."""

    mode: str = "offline"
    table_path: str = "data/hst_svm/mast_categories.csv"
    cache_path: str = "data/hst_svm/mast_cache.json"
    retries: int = 3
    retry_wait_seconds: float = 5.0
    step_retries: int = 2
    step_retry_wait_seconds: float = 60.0
    allow_unresolved_targets: bool = False

    def source(self) -> mast.CategorySource:
        """The configured lookup."""
        if self.mode == "live":
            return mast.LiveMastCategories(Path(self.cache_path), self.retries, self.retry_wait_seconds)
        if self.mode == "offline":
            return mast.OfflineCategoryTable(Path(self.table_path))
        raise mast.MastConfigError(f"unknown MAST mode {self.mode!r} (offline or live)")

    def categories(self, scrubbed: pd.DataFrame) -> pd.Series:
        """Raw category string per product of a scrubbed visit."""
        return mast.resolve_categories(mast.category_queries(scrubbed), self.source(), self.allow_unresolved_targets)


def env_flag(name: str) -> bool:
    """True when the environment variable is set to 1, true or yes (any case)."""
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes")


def resources_from_env() -> dict[str, object]:
    """Resources with folders from HST_SVM_* env vars, defaulting to paths relative to the current directory."""
    env = os.environ.get
    output = env("HST_SVM_OUTPUT", "data/hst_svm/out")
    return {
        "hst_svm_storage": SvmStorage(inbox_dir=env("HST_SVM_INBOX", "data/hst_svm/inbox"), output_dir=output,
                                      settle_seconds=float(env("HST_SVM_SETTLE_SECONDS", "5"))),
        "hst_svm_mast": MastCategoryResource(
            mode=env("HST_SVM_MAST", "offline"),
            table_path=env("HST_SVM_MAST_TABLE", "data/hst_svm/mast_categories.csv"),
            cache_path=env("HST_SVM_MAST_CACHE", "data/hst_svm/mast_cache.json"),
            allow_unresolved_targets=env_flag(ALLOW_UNRESOLVED_ENV),
        ),
        "hst_svm_io_manager": dg.FilesystemIOManager(base_dir=str(Path(output) / "storage")),
    }


def visit_failure(visit: str, message: str) -> dg.Failure:
    """A failure whose description is the one line the CLI prints: the visit, then the cause."""
    return dg.Failure(description=f"visit {visit}: {message}", metadata={"visit": visit})


@contextmanager
def visit_failures(context: dg.AssetExecutionContext, storage: SvmStorage,
                   lookup: MastCategoryResource | None = None) -> Iterator[None]:
    """Turn bad input into a clear failure of this visit only, and a MAST outage into a delayed step retry while
    `lookup.step_retries` last; either way the visit's feature rows and images are withdrawn."""
    visit = context.partition_key
    try:
        yield
    except mast.MastLookupError as exc:
        storage.withdraw(visit)
        failure = visit_failure(visit, first_line(exc))
        if lookup is not None and context.retry_number < lookup.step_retries:
            raise dg.RetryRequested(max_retries=lookup.step_retries,
                                    seconds_to_wait=lookup.step_retry_wait_seconds) from failure
        raise failure from exc
    except mast.UnresolvedCategoryError as exc:
        storage.withdraw(visit)
        raise visit_failure(visit, f"{first_line(exc)}; {ALLOW_UNRESOLVED_HINT}") from exc
    except (SvmInputError, ValueError) as exc:
        storage.withdraw(visit)
        raise visit_failure(visit, first_line(exc)) from exc


# --- per-visit assets -------------------------------------------------------------------------------------------------
class HarvestConfig(dg.Config):
    """Comma-separated globs of the QA JSONs to harvest in a visit dir."""

    json_pattern: str = DEFAULT_JSON_PATTERN


class DrawConfig(dg.Config):
    """Canvas of the PNGs: square figure side in inches and dots per inch (spacekit: 24 in, 100 dpi)."""

    figsize: float = 24
    dpi: int = 100


def check(asset: str, name: str, description: str, blocking: bool = False) -> dg.AssetCheckSpec:
    """Inline check spec."""
    return dg.AssetCheckSpec(name, asset=asset, description=description, blocking=blocking)


SUMMARY = "summary"  # check metadata: one line on why a check failed (the CLI prints it)


def result(name: str, passed: bool, warn: bool = False, summary: str = "", **metadata: object) -> dg.AssetCheckResult:
    """Check result with JSON metadata (WARN or ERROR severity) and, when failed, a one-line `summary` of why."""
    severity = dg.AssetCheckSeverity.WARN if warn else dg.AssetCheckSeverity.ERROR
    found = {k: dg.MetadataValue.json(v) for k, v in metadata.items()}
    if summary and not passed:
        found[SUMMARY] = dg.MetadataValue.text(summary)
    return dg.AssetCheckResult(check_name=name, passed=bool(passed), severity=severity, metadata=found)


def listing(parts: dict[str, list[str]]) -> str:
    """'label a, b; label c' for the non-empty parts."""
    return "; ".join(f"{label} {', '.join(names)}" for label, names in parts.items() if names)


def arrival(folder: Path) -> str:
    """When a visit folder last changed, as an ISO UTC timestamp."""
    return datetime.fromtimestamp(folder.stat().st_mtime, tz=timezone.utc).isoformat(timespec="seconds")


def csv_metadata(frame: pd.DataFrame, path: Path) -> dict[str, object]:
    """Row count, path and a preview of a written table."""
    preview = scrub.with_index_column(frame).head(10).to_markdown(index=False)
    return {"dagster/row_count": len(frame), "path": dg.MetadataValue.path(str(path)),
            "preview": dg.MetadataValue.md(preview)}


@dg.asset(
    group_name=GROUP, partitions_def=visit_partitions, io_manager_key="hst_svm_io_manager", kinds={"json", "pandas"},
    check_specs=[
        check("svm_qa_harvest", "one_row_per_total_product",
              "Exactly one harvested row per *_total_<visit>_dr[zc].fits in the visit dir.", blocking=True),
        check("svm_qa_harvest", "required_fields_present",
              "targname, ra_targ, dec_targ, numexp, imgname, point, segment present and not null.", blocking=True),
        check("svm_qa_harvest", "gaia_count_present", "Every product has a gaia_sources JSON (else gaia = 0)."),
    ],
)
def svm_qa_harvest(context: dg.AssetExecutionContext, config: HarvestConfig, hst_svm_storage: SvmStorage):
    """drizzlepac QA JSONs of one visit, one row per total product, harvested columns (spacekit's `F.h5`)."""
    visit = context.partition_key
    folder = hst_svm_storage.visit_dir(visit)
    with visit_failures(context, hst_svm_storage):
        files = [harvest.read_qa_file(p) for p in harvest.find_qa_files(folder, config.json_pattern)]
        frame = harvest.harvest_frame(files, visit)
        scrub.require_images(frame, folder)
    path = outputs.write_csv(frame, hst_svm_storage.asset_csv("svm_qa_harvest", visit))
    yield dg.Output(frame, metadata=csv_metadata(frame, path) | harvest.provenance(files) | {
        "json_files": len(files), "visit_arrival": arrival(folder)})
    expected = {product_index(p, visit) for p in total_products(folder)}
    got = set(frame.index)
    no_json, no_fits = sorted(expected - got), sorted(got - expected)
    yield result("one_row_per_total_product", not no_json and not no_fits, missing=no_json, unexpected=no_fits,
                 summary=listing({"no QA JSON for": no_json, "no total FITS for": no_fits}))
    incomplete = scrub.missing_required(frame)
    yield result("required_fields_present", not incomplete, incomplete=incomplete,
                 summary=listing({f"{product} lacks": fields for product, fields in incomplete.items()}))
    if no_json or no_fits or incomplete:  # the blocking checks stop the run: leave no stale rows of the visit
        hst_svm_storage.withdraw(visit)
    short = scrub.short_names(frame)
    short = short.loc[:, ~short.columns.duplicated()]
    no_gaia = sorted(frame.index[short[GAIA_FIELD].isna()] if GAIA_FIELD in short else frame.index)
    yield result("gaia_count_present", not no_gaia, warn=True, set_to_zero=no_gaia)


@dg.asset(
    group_name=GROUP, partitions_def=visit_partitions, io_manager_key="hst_svm_io_manager", kinds={"fits", "pandas"},
    pool="hst_svm_mast",
    check_specs=[check("svm_features_raw", "category_resolved", "Every target has a MAST classification.")],
)
def svm_features_raw(context: dg.AssetExecutionContext, svm_qa_harvest: pd.DataFrame, hst_svm_storage: SvmStorage,
                     hst_svm_mast: MastCategoryResource):
    """Scrubbed rows + SCI-header alignment metrics + MAST category + encodings: 18 columns (spacekit's `raw_F.csv`)."""
    visit = context.partition_key
    folder = hst_svm_storage.visit_dir(visit)
    with visit_failures(context, hst_svm_storage, hst_svm_mast):
        scrubbed = scrub.scrub(svm_qa_harvest, visit)
        raw = scrub.raw_features(scrubbed, scrub.fits_metrics(scrubbed, folder), hst_svm_mast.categories(scrubbed))
    path = outputs.write_csv(raw, hst_svm_storage.asset_csv(FEATURES_RAW, visit))
    yield dg.Output(raw, metadata=csv_metadata(raw, path) | {"mast_mode": hst_svm_mast.mode})
    unresolved = raw.loc[raw["category"] == UNRESOLVED_CATEGORY, "targname"].astype(str)
    yield result("category_resolved", unresolved.empty, warn=True, unresolved_targets=sorted(set(unresolved)),
                 products=sorted(unresolved.index))


@dg.asset(
    group_name=GROUP, partitions_def=visit_partitions, io_manager_key="hst_svm_io_manager", kinds={"csv", "pandas"},
    check_specs=[
        check("svm_features", "codes_in_range",
              f"det, wcs, cat come from the known tables (unknown codes: {UNKNOWN_CODES})."),
        check("svm_features", "values_in_range",
              "numexp >= 1; nmatches, gaia >= 0; point, segment >= 0 (-1: catalog count missing); rms_* >= -1."),
    ],
)
def svm_features(context: dg.AssetExecutionContext, svm_features_raw: pd.DataFrame, hst_svm_storage: SvmStorage):
    """The model's feature rows: numexp, rms_ra, rms_dec, nmatches, point, segment, gaia, det, wcs, cat [, label]
    (spacekit's `F.csv`)."""
    visit = context.partition_key
    final = scrub.final_features(svm_features_raw, visit)
    path = outputs.write_csv(final, hst_svm_storage.asset_csv(FEATURES, visit))
    yield dg.Output(final, metadata=csv_metadata(final, path))
    unknown = unknown_values(svm_features_raw)
    yield result("codes_in_range", not unknown, warn=True, unknown_raw_values=unknown)
    bad = {
        "numexp < 1": final["numexp"] < 1,
        "nmatches < 0": final["nmatches"] < 0,
        "gaia < 0": final["gaia"] < 0,
        "point/segment < 0": (final[["point", "segment"]] < 0).any(axis=1),
        "rms < -1": (final[["rms_ra", "rms_dec"]] < -1).any(axis=1),
    }
    found = {rule: sorted(final.index[mask]) for rule, mask in bad.items() if mask.any()}
    yield result("values_in_range", not found, warn=True, out_of_range=found)


@dg.asset(group_name=GROUP, partitions_def=visit_partitions, kinds={"png", "matplotlib"}, pool="hst_svm_draw")
def svm_mosaic_images(context: dg.AssetExecutionContext, config: DrawConfig, svm_features: pd.DataFrame,
                      hst_svm_storage: SvmStorage) -> dg.MaterializeResult:
    """Three PNGs per product in img/<index>/<index>{,_source,_gaia}.png (spacekit's `img/`)."""
    visit = context.partition_key
    products = total_products(hst_svm_storage.visit_dir(visit))
    root = hst_svm_storage.img_root
    removed = outputs.remove_stale_images(root, visit, set(svm_features.index))
    written: list[Path] = []
    with visit_failures(context, hst_svm_storage):
        for index in svm_features.index:
            product = index_product(index, visit)
            if product not in products:
                raise SvmInputError(f"no total FITS for product {product}")
            written += draw_product(product_files(products[product], product), root / index, index,
                                    config.figsize, config.dpi)
    return dg.MaterializeResult(metadata={
        "images": dg.MetadataValue.json([p.relative_to(root).as_posix() for p in written]),
        "img_root": dg.MetadataValue.path(str(root)), "removed_stale": dg.MetadataValue.json(removed)})


@dg.asset_check(asset=svm_mosaic_images, blocking=True,
                description="Three readable PNGs of sane size for every row of the visit's svm_features CSV.")
def images_present_and_readable(context: dg.AssetCheckExecutionContext,
                                hst_svm_storage: SvmStorage) -> dg.AssetCheckResult:
    """Inspect the image folders of the visit's products on disk."""
    visit = context.partition_key
    features = pd.read_csv(hst_svm_storage.asset_csv(FEATURES, visit), usecols=["index"])
    problems = outputs.image_problems(hst_svm_storage.img_root, list(features["index"]))
    metadata = {"visit": visit, "products": len(features), "problems": dg.MetadataValue.json(problems)}
    if problems:
        metadata[SUMMARY] = dg.MetadataValue.text("; ".join(f"{name} {why}" for name, why in problems.items()))
    return dg.AssetCheckResult(passed=not problems, metadata=metadata)


# --- training sets over all visits ------------------------------------------------------------------------------------
@contextmanager
def training_set_failures() -> Iterator[None]:
    """Turn an unreadable per-visit CSV into a one-line failure naming it."""
    try:
        yield
    except SvmInputError as exc:
        raise dg.Failure(description=f"training sets: {first_line(exc)}") from exc


def combined_metadata(combined: pd.DataFrame, path: Path, folder: Path) -> dict[str, object]:
    """Metadata of a combined table: that of its CSV, and how many visit files it was built from."""
    return csv_metadata(combined, path) | {"visits": len(outputs.visit_csvs(folder))}


@dg.asset(group_name=GROUP, deps=[svm_features], kinds={"csv"},
          check_specs=[check("svm_training_set", "unique_index", "No product index appears twice.", blocking=True)])
def svm_training_set(hst_svm_storage: SvmStorage) -> dg.MaterializeResult:
    """Feature rows of every visit CSV in the output folder's svm_features/, in visit-name order (spacekit's
    `preprocessed.csv`); read from disk, so every visit ever ingested there counts, whatever the Dagster instance."""
    folder = hst_svm_storage.output / FEATURES
    with training_set_failures():
        combined = outputs.combine_features(folder)
    path = outputs.write_csv(combined, hst_svm_storage.output / "preprocessed.csv")
    duplicates = sorted(set(combined.index[combined.index.duplicated()]))
    return dg.MaterializeResult(metadata=combined_metadata(combined, path, folder), check_results=[
        result("unique_index", not duplicates, duplicates=duplicates, summary=listing({"duplicated": duplicates}))])


@dg.asset(group_name=GROUP, deps=[svm_features_raw], kinds={"csv"})
def svm_raw_training_set(hst_svm_storage: SvmStorage) -> dg.MaterializeResult:
    """Raw rows of every visit CSV in the output folder's svm_features_raw/, in visit-name order (spacekit's
    `raw_combined.csv`)."""
    folder = hst_svm_storage.output / FEATURES_RAW
    with training_set_failures():
        combined = outputs.combine_raw(folder)
    path = outputs.write_csv(combined, hst_svm_storage.output / "raw_combined.csv")
    return dg.MaterializeResult(metadata=combined_metadata(combined, path, folder))


VISIT_ASSETS = [svm_qa_harvest, svm_features_raw, svm_features, svm_mosaic_images]
TRAINING_ASSETS = [svm_training_set, svm_raw_training_set]

# --- jobs, sensor, schedule -------------------------------------------------------------------------------------------
hst_svm_visit_job = dg.define_asset_job(
    "hst_svm_visit_job", selection=dg.AssetSelection.assets(*VISIT_ASSETS), executor_def=dg.in_process_executor,
    description="Ingest one visit: harvest, features, images (steps are a chain, so they run in one process).",
)
hst_svm_training_sets_job = dg.define_asset_job(
    "hst_svm_training_sets_job", selection=dg.AssetSelection.assets(*TRAINING_ASSETS),
    description="Rebuild preprocessed.csv and raw_combined.csv from every visit CSV in the output folder.",
)


@dg.sensor(job=hst_svm_visit_job, minimum_interval_seconds=5, default_status=dg.DefaultSensorStatus.RUNNING)
def hst_svm_visit_sensor(context: dg.SensorEvaluationContext, hst_svm_storage: SvmStorage) -> dg.SensorResult:
    """Register and ingest complete, settled visit dirs of the inbox; re-ingest a visit whose files changed."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    scan = scan_inbox(hst_svm_storage.inbox, time.time(), hst_svm_storage.settle_seconds)
    for visit, reason in scan.waiting.items():
        context.log.info(f"waiting for {visit}: {reason}")
    changed = {visit: fp for visit, fp in scan.ready.items() if seen.get(visit) != fp}
    cursor = json.dumps(seen | changed, sort_keys=True)
    if not changed:
        return dg.SensorResult(skip_reason=f"no new or changed visit in {hst_svm_storage.inbox}", cursor=cursor)
    known = set(context.instance.get_dynamic_partitions(visit_partitions.name))
    new = [visit for visit in changed if visit not in known]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=v, run_key=f"{v}:{fp}") for v, fp in changed.items()],
        dynamic_partitions_requests=[visit_partitions.build_add_request(new)] if new else [],
        cursor=cursor,
    )


@dg.sensor(job=hst_svm_training_sets_job, minimum_interval_seconds=10, default_status=dg.DefaultSensorStatus.RUNNING)
def hst_svm_training_sets_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Rebuild the combined training sets once visit runs have finished, whether they ingested or withdrew a visit."""
    after = int(context.cursor) if context.cursor else -1
    finished = [event_id for event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
                for event_id, entry in context.instance.event_log_storage.get_logs_for_all_runs_by_log_id(
                    after_cursor=after, dagster_event_type=event_type).items()
                if entry.job_name == hst_svm_visit_job.name]
    if not finished:
        return dg.SensorResult(skip_reason="no visit run finished since the last rebuild", cursor=context.cursor)
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"after-event:{max(finished)}")],
                           cursor=str(max(finished)))


defs = dg.Definitions(
    assets=[*VISIT_ASSETS, *TRAINING_ASSETS],
    asset_checks=[images_present_and_readable],
    sensors=[hst_svm_visit_sensor, hst_svm_training_sets_sensor],
    jobs=[hst_svm_visit_job, hst_svm_training_sets_job],
    resources=resources_from_env(),
)
