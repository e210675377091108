"""The JWST ingest's assets: one step that ingests a range of days in date order, in one run.

For each day of the range, `jwst_ingest_days` reads the drop once and checks it; a valid drop is the day's raw drop,
scrubbed into its science exposures, which are staged in the output database (stored once: every later replay of
the day reads them there). Then it commits the staged days in date order, a group of days per transaction, which
materializes the tables a user knows: the backlog of priors (`ingest.csv`), the matched products (`training.csv`,
`level1.csv`), the encoded training tables (`train-*`, `raw-*`, `rem-*`) and the mosaics. The backlog depends on
its own previous day, and a backfill range runs in one run: its days are ingested in a worker process while the
step records the days before (`JwstCalStore.ingest`).
"""

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # not exported by dagster
    AssetCheckEvaluationTargetMaterializationData,
)

from ingest_assets.defs.jwst_cal.partitions import PREVIOUS_DAY, daily_partitions
from ingest_assets.defs.jwst_cal.resources import JwstCalStore
from ingest_assets.jwst_cal.drops import DropError
from ingest_assets.jwst_cal.ranges import CommittedDay, StagedDay
from ingest_assets.jwst_cal.store import ExportIncompleteError, StoreError
from ingest_assets.jwst_cal.worker import WorkerError

GROUP = "jwst_cal"
STORE_POOL = "jwst_cal_store"  # every step that writes the output database: one at a time (deploy/dagster.yaml)
LISTED = 100  # items listed in a check's metadata; its counts cover them all
SHOWN = 5  # days or products named in a one-line failure
CHECKED_TOGETHER = 30  # days whose check results wait for one lookup of their targets

RAW_DROP, SCRUBBED = dg.AssetKey("jwst_raw_drop"), dg.AssetKey("jwst_scrubbed_exposures")
PRIORS, MATCHED = dg.AssetKey("jwst_priors"), dg.AssetKey("jwst_matched_products")
TRAINING_TABLES, MOSAICS = dg.AssetKey("jwst_training_tables"), dg.AssetKey("jwst_mosaics")
TABLES = (PRIORS, MATCHED, TRAINING_TABLES, MOSAICS)
# The stored table whose columns each table asset shows (train-spec/tac share train-image's; train-fgs has fewer).
EXPORTED_AS = {PRIORS: "ingest", MATCHED: "training", TRAINING_TABLES: "train-image", MOSAICS: "mosaics"}
DROP_IS_VALID = dg.AssetCheckKey(RAW_DROP, "drop_is_valid")
IMAGE_SIZES = dg.AssetCheckKey(RAW_DROP, "l3_rows_have_image_size")
MATCH_RATE = dg.AssetCheckKey(MATCHED, "l3_match_rate_is_100pct")
DUPLICATE_CLAIMS = dg.AssetCheckKey(MATCHED, "no_duplicate_l3_claims")


def _table(key: dg.AssetKey, description: str, deps: list) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=deps, skippable=True, kinds={"csv", "duckdb"}, description=description)


def _check_spec(key: dg.AssetCheckKey, description: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(key.name, asset=key.asset_key, partitions_def=daily_partitions, description=description)


def _latest(context: dg.AssetExecutionContext, key: dg.AssetKey, days: list[str]
            ) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """Each day's latest materialization of an asset, as the target of its checks' results: one lookup for days each
    materialized once since the last lookup (the asset's newest materializations: its writers run one at a time)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=days), limit=len(days)).records
    latest = {}
    for record in records:  # newest first
        latest.setdefault(record.partition_key, AssetCheckEvaluationTargetMaterializationData(
            storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp))
    return latest


CheckResults = Callable[[AssetCheckEvaluationTargetMaterializationData | None], Iterator[dg.AssetCheckEvaluation]]


@dataclass
class WaitingChecks:
    """Check results of days whose materializations are recorded, waiting for their targets, which are looked up
    once for CHECKED_TOGETHER days."""

    context: dg.AssetExecutionContext
    waiting: list[tuple[dg.AssetKey, str, CheckResults]] = field(default_factory=list)

    def add(self, key: dg.AssetKey, day: str, results: CheckResults) -> Iterator[dg.AssetCheckEvaluation]:
        """Queue a day's results on the checks of asset `key`; yields the queued results when enough wait."""
        self.waiting.append((key, day, results))
        if len(self.waiting) >= CHECKED_TOGETHER:
            yield from self.flush()

    def flush(self) -> Iterator[dg.AssetCheckEvaluation]:
        """Every queued result, recorded against its day's materialization."""
        waiting, self.waiting = self.waiting, []
        targets = {key: _latest(self.context, key, [day for k, day, _ in waiting if k == key])
                   for key in dict.fromkeys(key for key, _, _ in waiting)}
        for key, day, results in waiting:
            yield from results(targets[key].get(day))


def _evaluation(key: dg.AssetCheckKey, day: str, target: AssetCheckEvaluationTargetMaterializationData | None,
                passed: bool, severity: dg.AssetCheckSeverity, metadata: dict, description: str | None = None
                ) -> dg.AssetCheckEvaluation:
    """A check result recorded against its day and `target`, the day's latest materialization of the checked asset
    (a step over a range records one per day; the UI counts a day's check as current when it names that
    materialization)."""
    return dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name, passed=passed, partition=day,
                                   severity=severity, metadata=metadata, description=description, blocking=False,
                                   target_materialization_data=target)


def _named(items: list[str]) -> str:
    return ", ".join(items[:SHOWN]) + (" ..." if len(items) > SHOWN else "")


@dg.multi_asset(
    name="jwst_ingest_days", group_name=GROUP, partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(), pool=STORE_POOL, can_subset=True,
    specs=[
        dg.AssetSpec(RAW_DROP, skippable=True, kinds={"csv"}, description=(
            "The day's drop YYYY-MM-DD_DDD.csv from the inbox, once it passed drop_is_valid: Level 1 exposures, "
            "Level 3 products and each product's memory footprint (ImageSize).")),
        dg.AssetSpec(SCRUBBED, deps=[RAW_DROP], skippable=True, kinds={"pandas", "duckdb"}, description=(
            "The drop's science rows, staged in the output database: L1/L3 rows by DagNodeName, deduplicated, "
            "L3 exposure types only, with their matching parameters; mosaics split off.")),
        _table(PRIORS, "ingest.csv: the backlog carried between days. Exposures (and L3 products) not matched yet; "
                       "an exposure leaves it on the day its L3 product arrives. Depends on its own previous day: "
                       "days are committed in date order.",
               [dg.AssetDep(PRIORS, partition_mapping=PREVIOUS_DAY)]),
        _table(MATCHED, "training.csv (and level1.csv): every matched L3 product with its memory footprint, one row "
                        "per product, updated in place when the product is reprocessed; level1.csv holds the L1 "
                        "exposures of matched products.", [SCRUBBED]),
        _table(TRAINING_TABLES, "train-{image,spec,tac,fgs}.csv: one encoded feature row per matched product, the "
                                "models' input; raw-*.csv holds the same rows unencoded, rem-*.csv the day's products "
                                "still unmatched, category_codes.csv the codes of new categories.", [SCRUBBED]),
        _table(MOSAICS, "mosaics.csv: every mosaic product row (jwNNNNN-c...), kept apart from training.", [SCRUBBED]),
    ],
    check_specs=[
        _check_spec(DROP_IS_VALID, "The drop can be read: one field per column on every line, required columns "
                                   "present, numbers numeric, ImageSize positive, Dataset named."),
        _check_spec(IMAGE_SIZES, "Every L3 row has an ImageSize (one without is ingested but never becomes a "
                                 "training row)."),
        _check_spec(MATCH_RATE, "Every L3 product of the day's working set matched its exposures or is a "
                                "reprocessed product (100% Level 3 match rate)."),
        _check_spec(DUPLICATE_CLAIMS, "No L3 product is claimed by more than one constructed product."),
    ],
)
def jwst_ingest_days(context: dg.AssetExecutionContext, jwst_cal_store: JwstCalStore) -> Iterator:
    """Stage every day of the range, then commit the staged days in date order, recording each day's tables as its
    group of days is committed (a late day replays the later ones, which are recorded as materializations of their
    own days); the check results follow, CHECKED_TOGETHER days at a time. The output database is held for the whole
    step. Fails at the end, after ingesting what it could, when a day's drop was bad or an L3 product stayed
    unmatched."""
    days = list(context.partition_keys)
    commit = bool(context.selected_asset_keys & set(TABLES))
    bad, unmatched, checks = [], [], WaitingChecks(context)
    try:
        with _failing_cleanly(), closing(jwst_cal_store.ingest(days, commit=commit)) as steps:
            for step in steps:
                if isinstance(step, StagedDay):
                    bad += [step] if step.problems else []
                    yield from _stage_events(step, checks)
                else:
                    yield from _table_events(step, checks)
                    unmatched += [step.day] if step.report.l3_unmatched else []
    except GeneratorExit:
        raise
    except BaseException:
        yield from checks.flush()  # the checks of the days recorded before the failure
        raise
    yield from checks.flush()
    if len(bad) == len(days) == 1:
        raise dg.Failure(description=f"not ingested: {bad[0].problems[0]}")
    if bad:
        raise dg.Failure(
            description=f"{len(bad)} of {len(days)} days not ingested, their drop failed drop_is_valid: "
                        f"{_named([str(result.problems[0]) for result in bad])}",
            metadata={"days": dg.MetadataValue.json([result.day for result in bad])})
    if unmatched:
        raise dg.Failure(
            description=f"L3 products stayed unmatched on {_named(unmatched)}: the days are ingested, their "
                        "exposures wait in the backlog (l3_match_rate_is_100pct)",
            metadata={"days": dg.MetadataValue.json(unmatched)})


@contextmanager
def _failing_cleanly() -> Iterator[None]:
    """Store and worker failures and values the engine cannot process fail the step with their one-line message."""
    try:
        yield
    except (DropError, StoreError, ExportIncompleteError, WorkerError) as err:
        raise dg.Failure(description=str(err)) from err


def _stage_events(staged: StagedDay, checks: WaitingChecks) -> Iterator:
    day, counts = staged.day, staged.counts
    if counts is not None:
        yield dg.AssetMaterialization(RAW_DROP, partition=day, metadata={
            "file": dg.MetadataValue.path(str(staged.path)), "dagster/row_count": counts.rows_read,
            "columns": staged.columns,
        })
        yield dg.AssetMaterialization(SCRUBBED, partition=day, metadata={
            "dagster/row_count": counts.science, "rows_in": counts.rows_read, "rows_l1": counts.l1,
            "rows_l3": counts.l3, "mosaics": counts.mosaics, "mrs_ch24_dropped": counts.mrs_ch24_dropped,
            "stage_seconds": round(staged.seconds, 3),
        })

    def results(target: AssetCheckEvaluationTargetMaterializationData | None) -> Iterator[dg.AssetCheckEvaluation]:
        yield _evaluation(DROP_IS_VALID, day, target, not staged.problems, dg.AssetCheckSeverity.ERROR, {
            "problems": dg.MetadataValue.json([str(p) for p in staged.problems[:LISTED]]),
            "n_problems": len(staged.problems),
        }, description=str(staged.problems[0]) if staged.problems else None)
        yield _evaluation(IMAGE_SIZES, day, target, not staged.oddities, dg.AssetCheckSeverity.WARN, {
            "rows": dg.MetadataValue.json([str(o) for o in staged.oddities[:LISTED]]),
            "n_rows": len(staged.oddities),
        })

    yield from checks.add(RAW_DROP, day, results)


def _column_schema(columns: tuple[tuple[str, str], ...]) -> dg.TableSchema:
    return dg.TableSchema([dg.TableColumn(name, typ.lower()) for name, typ in columns])


def _table_events(outcome: CommittedDay, checks: WaitingChecks) -> Iterator:
    report, day = outcome.report, outcome.day
    schemas = {key: _column_schema(outcome.columns.get(table, ())) for key, table in EXPORTED_AS.items()}
    age = (dt.date.fromisoformat(day) - dt.date.fromisoformat(outcome.backlog_since)).days \
        if outcome.backlog_since else 0
    yield dg.AssetMaterialization(PRIORS, partition=day, metadata={
        "dagster/row_count": report.backlog, "priors_pulled": report.priors_pulled, "oldest_exposure_age_days": age,
        "commit_seconds": round(outcome.seconds, 3), "dagster/column_schema": schemas[PRIORS],
    })
    yield dg.AssetMaterialization(MATCHED, partition=day, metadata={
        "dagster/row_count": report.training_rows, "products": report.products,
        "products_matched": report.products_matched, "l3_total": report.l3_total, "l3_matched": report.l3_matched,
        "match_rate": float(report.match_rate), "reprocessed": len(report.reprocessed),
        "dagster/column_schema": schemas[MATCHED],
    })
    yield dg.AssetMaterialization(TRAINING_TABLES, partition=day, metadata={
        **{f"rows_added_{name}": rows for name, rows in outcome.train_rows_added.items()},
        "dagster/column_schema": schemas[TRAINING_TABLES]})
    yield dg.AssetMaterialization(MOSAICS, partition=day, metadata={
        "mosaics_added": report.mosaics, "dagster/column_schema": schemas[MOSAICS]})

    def results(target: AssetCheckEvaluationTargetMaterializationData | None) -> Iterator[dg.AssetCheckEvaluation]:
        yield _evaluation(MATCH_RATE, day, target, not report.l3_unmatched, dg.AssetCheckSeverity.ERROR, {
            "match_rate": float(report.match_rate), "l3_total": report.l3_total, "l3_matched": report.l3_matched,
            "unmatched": dg.MetadataValue.json(list(report.l3_unmatched[:LISTED])),
            "multi_match_losers": dg.MetadataValue.json(list(report.multi_match_losers[:LISTED])),
        }, description=f"unmatched: {_named(list(report.l3_unmatched))}" if report.l3_unmatched else None)
        yield _evaluation(DUPLICATE_CLAIMS, day, target, not report.duplicate_claims, dg.AssetCheckSeverity.WARN,
                          {"claims": dg.MetadataValue.json({p: list(g) for p, g in report.duplicate_claims.items()})})

    yield from checks.add(MATCHED, day, results)
