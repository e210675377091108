"""`jwst-cal-ingest`: spacekit's `jcal` ingest command, run through the project's Dagster assets in process."""

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

DESCRIPTION = """\
Ingest JWST calibration-metadata drops (YYYY-MM-DD_DDD.csv) into the training-table database in OUTPUT_DIR,
one day at a time in date order, through the project's Dagster assets. Continues from whatever OUTPUT_DIR already
holds: calling it once per day equals one spacekit `JwstCalIngest` run per day. Ingesting a day again replaces that
day's contribution (later days already ingested are replayed on top of it), so re-runs never duplicate rows.

Outputs (spacekit 1.1.4's file set): training.csv, ingest.csv (the unmatched backlog carried to later days),
mosaics.csv, train-{image,spec,tac,fgs}.csv, raw-*.csv, rem-*.csv, level1.csv (with -s), category_codes.csv, and
jwst-cal.duckdb, the database they are exported from.
"""
EPILOG = """\
exit status:
  0  every day ingested and every ERROR check passed
  1  every day ingested, but an ERROR check failed (e.g. an L3 product stayed unmatched; outputs are written,
     as spacekit's exit 1)
  2  bad input or usage: the day named on stderr was not ingested (nothing of it written); other days were
examples:
  jwst-cal-ingest -i drops/ -o db/                 # every drop in drops/
  jwst-cal-ingest -i drops/ -o db/ -p 2024-02-2    # the days whose file name starts with 2024-02-2
  jwst-cal-ingest -i drops/ -o db/ -p '*_05[0-9]' -s
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="jwst-cal-ingest", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--input_path", default=".", type=Path,
                        help="folder holding the daily drops (default: the current directory)")
    parser.add_argument("-o", "--outpath", type=Path, default=None,
                        help="output folder (default: INPUT_PATH, as spacekit; drops are never mistaken for outputs)")
    parser.add_argument("-p", "--pfx", default="",
                        help="file-name prefix selecting drops; may hold glob wildcards (spacekit's -p)")
    parser.add_argument("-s", "--save_l1", action="store_true",
                        help="also write level1.csv, the matched L1 exposures (a flag: it takes no value)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings("ignore")
    import dagster as dg

    from ingest_assets.defs.jwst_cal import JWST_ASSETS, jwst_cal_resources
    from ingest_assets.jwst_cal.drops import discover_drops

    inbox, out = args.input_path, args.outpath or args.input_path
    if not inbox.is_dir():
        print(f"jwst-cal-ingest: no input folder {inbox}", file=sys.stderr)
        return 2
    drops, ignored = discover_drops(inbox, args.pfx)
    for name, reason in ignored:
        print(f"jwst-cal-ingest: ignoring {name}: {reason}", file=sys.stderr)
    if not drops:
        print(f"jwst-cal-ingest: no drops matching {args.pfx or ''}*.csv in {inbox}", file=sys.stderr)
        return 2

    status = 0
    quiet = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    with tempfile.TemporaryDirectory(prefix="jwst-cal-ingest-") as storage, dg.DagsterInstance.ephemeral() as instance:
        resources = jwst_cal_resources(str(inbox), str(out), storage, save_l1=args.save_l1)
        for path in drops:
            day = path.name.split("_")[0]
            try:
                result = dg.materialize(JWST_ASSETS, partition_key=day, resources=resources, instance=instance,
                                        raise_on_error=False, run_config=quiet)
            except dg.DagsterError as err:
                print(f"{path.name}: not ingested: {err}", file=sys.stderr)
                status = 2
                continue
            status = max(status, _report_day(path.name, result))
    print(f"outputs in {out}")
    return status


def _report_day(name: str, result) -> int:
    """Print the day's line; return its exit status."""
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    invalid = checks.get("drop_is_valid")
    if invalid is not None and not invalid.passed:
        for problem in invalid.metadata["problems"].value:
            print(f"{name}: not ingested: {problem}", file=sys.stderr)
        return 2
    if not result.success and not _materialized(result, "jwst_priors"):
        for event in result.get_step_failure_events():
            failure = event.step_failure_data
            reason = failure.user_failure_data.description if failure.user_failure_data else failure.error.message
            print(f"{name}: not ingested: {reason.strip()}", file=sys.stderr)
        return 2
    report = result.output_for_node("jwst_priors").report
    gate = checks["l3_match_rate_is_100pct"]
    print(
        f"{name}: rows {report['rows_read']}, L1 {report['rows_l1']}, L3 {report['rows_l3']}, "
        f"priors pulled {report['priors_pulled']}, L3 matched {report['l3_matched']}/{report['l3_total']}, "
        f"reprocessed {len(report['reprocessed'])}, backlog {report['backlog']}, "
        f"match-rate check {'passed' if gate.passed else 'FAILED: ' + ', '.join(report['l3_unmatched'])}"
    )
    return 0 if gate.passed else 1


def _materialized(result, asset: str) -> bool:
    return any(e.asset_key.to_user_string() == asset for e in result.get_asset_materialization_events())


if __name__ == "__main__":
    sys.exit(main())
