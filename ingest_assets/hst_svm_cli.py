"""`hst-svm-ingest`: run HST SVM visits through the Dagster assets of group `hst_svm`, in process."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from ingest_assets.defs import hst_svm as svm
from ingest_assets.hst_svm.constants import DEFAULT_JSON_PATTERN
from ingest_assets.hst_svm.visits import is_visit_name, scan_inbox

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT = 0, 1, 2
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}

EPILOG = """\
Visits are the sub-directories of INPUT named <ipppss> (e.g. ibl738) or, for synthetic sets,
<ipppss>_<filter>_<all|sub>_<stat|stoc> (their rows get the name suffix and label=1). Outputs under OUTPUT:
  svm_qa_harvest/<visit>.csv      harvested QA columns (spacekit's F.h5 content)
  svm_features_raw/<visit>.csv    18 raw columns + index (spacekit's raw_F.csv)
  svm_features/<visit>.csv        numexp,rms_ra,rms_dec,nmatches,point,segment,gaia,det,wcs,cat[,label],index
  img/<index>/<index>{,_source,_gaia}.png
  preprocessed.csv, raw_combined.csv   every svm_features[_raw]/<visit>.csv of OUTPUT combined, in
                                       visit-name order (also visits ingested by earlier runs)
  storage/                        Dagster's pickled intermediates
A visit that fails leaves no rows in svm_features[_raw]/ and no images, so the combined tables leave it out.

MAST target categories (default: offline, no network): read from the local table --mast-table,
data/hst_svm/mast_categories.csv, which holds only the targets of the bundled sample visits.
A target without a classification fails its visit (exit 2) unless --allow-unresolved-targets (or
HST_SVM_ALLOW_UNRESOLVED=1) codes it U=3, as spacekit does; --mast live asks MAST itself.

Environment defaults: HST_SVM_INBOX, HST_SVM_OUTPUT, HST_SVM_MAST (offline|live), HST_SVM_MAST_TABLE,
HST_SVM_MAST_CACHE, HST_SVM_ALLOW_UNRESOLVED. Input visit dirs are never modified or deleted.
Output: one tab-separated line per visit: VISIT, STATUS (ok, CHECK FAILED, FAILED, SKIPPED), detail; a failed
visit's detail is one line "visit V: cause" naming the file or target. Then a "training sets" line.
Exit status: 0 all visits ingested and no ERROR check failed (WARN checks are printed only);
1 an ERROR-severity check failed (the line names the check and what it found); 2 bad input (an unreadable or
incomplete visit, an unresolved target, a MAST failure) or bad usage.

examples:
  hst-svm-ingest                                   # every complete visit in data/hst_svm/inbox
  hst-svm-ingest -i /data/svm -o /data/svm_out -z ibl738 -z j96029
  hst-svm-ingest -z /data/svm/ibl738 --no-draw     # one visit given by path, no PNGs
  hst-svm-ingest --mast live                       # ask MAST (pip install 'ingest_assets[mast]')
  hst-svm-ingest --allow-unresolved-targets        # code unknown targets U=3 instead of failing
"""


@dataclass(frozen=True)
class VisitOutcome:
    """What happened to one visit."""

    visit: str
    status: str
    detail: str
    code: int


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options (spacekit's `hsvm -i -o -z` plus the run options of `run_preprocessing`)."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="hst-svm-ingest", description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--input", type=Path, default=Path(env("HST_SVM_INBOX", "data/hst_svm/inbox")),
                        help="parent dir of the visit dirs (default: $HST_SVM_INBOX or data/hst_svm/inbox)")
    parser.add_argument("-o", "--output", type=Path, default=Path(env("HST_SVM_OUTPUT", "data/hst_svm/out")),
                        help="output root (default: $HST_SVM_OUTPUT or data/hst_svm/out)")
    parser.add_argument("-z", "--visit", action="append", default=[],
                        help="a visit name in INPUT or a path to a visit dir; repeatable (default: every complete "
                             "visit in INPUT)")
    parser.add_argument("--json-pattern", default=DEFAULT_JSON_PATTERN,
                        help=f"comma-separated globs of the QA JSONs (default: {DEFAULT_JSON_PATTERN})")
    parser.add_argument("--no-draw", action="store_true", help="skip the PNGs (spacekit's draw=0)")
    parser.add_argument("--figsize", type=float, default=24, help="PNG canvas side in inches (default: 24)")
    parser.add_argument("--dpi", type=int, default=100, help="PNG dots per inch (default: 100)")
    parser.add_argument("--no-training-sets", action="store_true",
                        help="do not rebuild preprocessed.csv and raw_combined.csv")
    parser.add_argument("--mast", choices=("offline", "live"), default=env("HST_SVM_MAST", "offline"),
                        help="target-category lookup (default: $HST_SVM_MAST or offline): offline reads "
                             "--mast-table, live asks MAST through astroquery (3 attempts, then the visit fails)")
    parser.add_argument("--mast-table", default=env("HST_SVM_MAST_TABLE", "data/hst_svm/mast_categories.csv"),
                        help="offline table of MAST observation rows (target_name, proposal_id, s_ra, s_dec, "
                             "target_classification) (default: $HST_SVM_MAST_TABLE or "
                             "data/hst_svm/mast_categories.csv, the sample visits' targets only)")
    parser.add_argument("--mast-cache", default=env("HST_SVM_MAST_CACHE", "data/hst_svm/mast_cache.json"),
                        help="persistent cache of live MAST answers")
    parser.add_argument("--allow-unresolved-targets", action="store_true",
                        default=svm.env_flag(svm.ALLOW_UNRESOLVED_ENV),
                        help='code a target without MAST classification as "None" (U=3) and warn, as spacekit '
                             "does (default: $HST_SVM_ALLOW_UNRESOLVED or off: its visit fails)")
    parser.add_argument("--dagster-home", type=Path,
                        help="use (and keep) this Dagster instance dir for the runs (default: an ephemeral instance)")
    return parser.parse_args(argv)


def usage_error(message: str) -> None:
    """Print a usage error and exit with status 2, like argparse."""
    print(f"hst-svm-ingest: error: {message}", file=sys.stderr)
    raise SystemExit(EXIT_BAD_INPUT)


def resolve_visits(args: argparse.Namespace) -> tuple[Path, list[str], list[VisitOutcome]]:
    """Input dir, visits to run, and outcomes for visits that are not ingestible as given."""
    if not args.visit:
        if not args.input.is_dir():
            usage_error(f"input dir {args.input} does not exist")
        scan = scan_inbox(args.input, now=time.time(), settle_seconds=0.0)
        waiting = [VisitOutcome(v, "SKIPPED", reason, EXIT_BAD_INPUT) for v, reason in scan.waiting.items()]
        return args.input, list(scan.ready), waiting
    paths = [Path(v) if Path(v).is_dir() else args.input / v for v in args.visit]
    parents = {p.parent.resolve() for p in paths}
    if len(parents) > 1:
        usage_error("all --visit dirs must share one parent dir")
    bad = [VisitOutcome(p.name, "FAILED", f"no visit dir {p}", EXIT_BAD_INPUT) for p in paths if not p.is_dir()]
    bad += [VisitOutcome(p.name, "FAILED", "not a visit dir name", EXIT_BAD_INPUT)
            for p in paths if p.is_dir() and not is_visit_name(p.name)]
    failed = {o.visit for o in bad}
    return paths[0].parent, list(dict.fromkeys(p.name for p in paths if p.name not in failed)), bad


def resources(args: argparse.Namespace, inbox: Path) -> dict[str, object]:
    """Resources bound to the command-line folders and MAST options."""
    return {
        "hst_svm_storage": svm.SvmStorage(inbox_dir=str(inbox), output_dir=str(args.output), settle_seconds=0),
        "hst_svm_mast": svm.MastCategoryResource(mode=args.mast, table_path=args.mast_table,
                                                 cache_path=args.mast_cache, step_retries=0,
                                                 allow_unresolved_targets=args.allow_unresolved_targets),
        "hst_svm_io_manager": dg.FilesystemIOManager(base_dir=str(args.output / "storage")),
    }


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    """First line of the first step failure of a run."""
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            return data.user_failure_data.description
        return data.error.message.strip().splitlines()[-1] if data.error else "step failed"
    return "run failed"


def row_counts(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """Row count metadata of the materialized assets of a run."""
    events = [e.materialization for e in result.get_asset_materialization_events()]
    return {m.asset_key.to_user_string(): m.metadata["dagster/row_count"].value
            for m in events if "dagster/row_count" in m.metadata}


def check_error(evaluation: dg.AssetCheckEvaluation) -> str:
    """A failed ERROR check by name, with its one-line summary when it has one."""
    summary = evaluation.metadata.get(svm.SUMMARY)
    return evaluation.check_name + (f" ({summary.value})" if summary else "")


def outcome(visit: str, result: dg.ExecuteInProcessResult) -> VisitOutcome:
    """Status line of one visit run from its check evaluations and failures."""
    checks = result.get_asset_check_evaluations()
    failed = [c for c in checks if not c.passed]
    errors = [check_error(c) for c in failed if c.severity == dg.AssetCheckSeverity.ERROR]
    warnings = [c.check_name for c in failed if c.severity == dg.AssetCheckSeverity.WARN]
    rows = row_counts(result).get("svm_features")
    summary = f"{rows if rows is not None else '?'} product(s), {len(checks) - len(failed)}/{len(checks)} checks passed"
    summary += "".join(f"; WARN {w}" for w in warnings)
    if errors:
        return VisitOutcome(visit, "CHECK FAILED", summary + "".join(f"; ERROR {e}" for e in errors),
                            EXIT_CHECK_FAILED)
    if not result.success:
        return VisitOutcome(visit, "FAILED", failure_message(result), EXIT_BAD_INPUT)
    return VisitOutcome(visit, "ok", summary, EXIT_OK)


def run_visit(visit: str, args: argparse.Namespace, res: dict[str, object],
              instance: dg.DagsterInstance) -> VisitOutcome:
    """Materialize the per-visit assets (and their checks) for one visit partition."""
    ops: dict[str, dg.Config] = {"svm_qa_harvest": svm.HarvestConfig(json_pattern=args.json_pattern)}
    selection = [svm.svm_qa_harvest, svm.svm_features_raw, svm.svm_features]
    if not args.no_draw:
        ops["svm_mosaic_images"] = svm.DrawConfig(figsize=args.figsize, dpi=args.dpi)
        selection.append(svm.svm_mosaic_images)
    result = dg.materialize(
        [*svm.VISIT_ASSETS, svm.images_present_and_readable], selection=selection, partition_key=visit,
        resources=res, instance=instance, raise_on_error=False,
        run_config=dg.RunConfig(ops=ops, loggers=QUIET_LOGS["loggers"]),
    )
    return outcome(visit, result)


def build_training_sets(res: dict[str, object], instance: dg.DagsterInstance) -> VisitOutcome:
    """Rebuild preprocessed.csv and raw_combined.csv from every visit CSV in the output folder."""
    result = dg.materialize([*svm.VISIT_ASSETS, *svm.TRAINING_ASSETS], selection=svm.TRAINING_ASSETS,
                            resources=res, instance=instance, raise_on_error=False, run_config=QUIET_LOGS)
    rows = row_counts(result)
    found = outcome("training sets", result)
    if found.code != EXIT_OK:
        return found
    return VisitOutcome("training sets", "ok", f"preprocessed.csv {rows.get('svm_training_set')} rows, "
                                               f"raw_combined.csv {rows.get('svm_raw_training_set')} rows", EXIT_OK)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns (and exits with) 0 ok, 1 a check failed, 2 bad input or usage."""
    args = parse_args(argv)
    inbox, visits, outcomes = resolve_visits(args)
    res = resources(args, inbox)
    instance = (dg.DagsterInstance.from_config(str(args.dagster_home)) if args.dagster_home
                else dg.DagsterInstance.ephemeral())
    new = [v for v in visits if not instance.has_dynamic_partition(svm.visit_partitions.name, v)]
    instance.add_dynamic_partitions(svm.visit_partitions.name, new)
    for line in outcomes:
        print(f"{line.visit}\t{line.status}\t{line.detail}")
    for visit in visits:
        outcomes.append(run_visit(visit, args, res, instance))
        print(f"{visit}\t{outcomes[-1].status}\t{outcomes[-1].detail}", flush=True)
    if visits and not args.no_training_sets:  # also after failures: a failed visit's rows were withdrawn
        outcomes.append(build_training_sets(res, instance))
        print(f"{outcomes[-1].visit}\t{outcomes[-1].status}\t{outcomes[-1].detail}")
    if not outcomes:
        print(f"no visit found in {inbox}")
        return EXIT_BAD_INPUT
    return max(o.code for o in outcomes)


if __name__ == "__main__":
    sys.exit(main())
