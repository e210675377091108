"""`jwst-cal-ingest`: spacekit's `jcal` ingest command, on the same engine calls as the Dagster assets."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ingest_assets.jwst_cal.day import DayOutcome
from ingest_assets.jwst_cal.drops import DropError, PrefixError, discover_drops
from ingest_assets.jwst_cal.pipeline import ingest_scrubbed, read_day, rebuild_store
from ingest_assets.jwst_cal.store import (
    DEFAULT_LOCK_TIMEOUT, ExportIncompleteError, StoreCorruptError, StoreError, StoreMissingError,
)

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_INPUT, EXIT_ENVIRONMENT, EXIT_EXPORT_INCOMPLETE, EXIT_INTERNAL = 0, 1, 2, 3, 4, 70
T = TypeVar("T")
DESCRIPTION = """\
Ingest JWST calibration-metadata drops (YYYY-MM-DD_DDD.csv) into the training-table database in OUTPUT_DIR,
one day at a time in date order. Continues from whatever OUTPUT_DIR already holds: calling it once per day equals
one spacekit `JwstCalIngest` run per day. Ingesting a day again replaces that day's contribution (later days already
ingested are replayed on top of it), so re-runs never duplicate rows. A day is all-or-nothing.

Outputs (spacekit 1.1.4's file set): training.csv, ingest.csv (the unmatched backlog carried to later days),
mosaics.csv, train-{image,spec,tac,fgs}.csv, raw-*.csv, rem-*.csv, level1.csv (with -s), category_codes.csv, and
jwst-cal.duckdb, the database they are exported from.
"""
EPILOG = f"""\
exit status:
  0    every day ingested and every ERROR check passed
  1    every day ingested, but an ERROR check failed (e.g. an L3 product stayed unmatched; outputs are written,
       as spacekit's exit 1)
  2    bad input or usage: the day named on stderr was not ingested (nothing of it written); other days were
  3    the output folder cannot be used (held by another process past --lock-timeout, database missing or
       corrupt, disk full, permissions): the day named was not ingested, nothing changed, later days not tried
  4    the day named is committed to jwst-cal.duckdb but its CSV export did not finish; any later run on the
       output folder completes it first (later days not tried)
  70   internal error (a bug: please report it with the traceback printed)
  130, 143  interrupted (SIGINT, SIGTERM) before the day's commit: that day not ingested, nothing changed
recovery:
  a deleted or corrupt jwst-cal.duckdb is refused (exit 3), never overwritten; rebuild it from the drops:
  jwst-cal-ingest --rebuild -i INPUT_DIR -o OUTPUT_DIR [-s]
examples:
  jwst-cal-ingest -i drops/ -o db/                 # every drop in drops/
  jwst-cal-ingest -i drops/ -o db/ -p 2024-02-2    # the days whose file name starts with 2024-02-2
  jwst-cal-ingest -i drops/ -o db/ -p '*_05[0-9]' -s
environment: JWST_CAL_LOCK_TIMEOUT (default {DEFAULT_LOCK_TIMEOUT:g} s)
"""


class Interrupted(BaseException):
    """A termination signal arrived: unwinds like KeyboardInterrupt, so open transactions roll back."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


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
                        help="file-name prefix selecting drops directly in INPUT_PATH; may hold glob wildcards "
                             "(spacekit's -p); never a path")
    parser.add_argument("-s", "--save_l1", action="store_true",
                        help="also write level1.csv, the matched L1 exposures (a flag: it takes no value)")
    parser.add_argument("--rebuild", action="store_true",
                        help="rebuild OUTPUT_DIR's database from every drop in INPUT_PATH, built aside and swapped in "
                             "when complete (OUTPUT_DIR is unchanged if any day fails)")
    parser.add_argument("--lock-timeout", type=float, metavar="SECONDS",
                        default=float(os.environ.get("JWST_CAL_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)),
                        help="how long to wait for another process holding OUTPUT_DIR (default: "
                             "$JWST_CAL_LOCK_TIMEOUT or %(default)g)")
    args = parser.parse_args(argv)
    if args.rebuild and args.pfx:
        parser.error("--rebuild ingests every drop: it takes no -p")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inbox, out = args.input_path, args.outpath or args.input_path
    if not inbox.is_dir():
        return _fail(f"no input folder {inbox}", EXIT_BAD_INPUT)
    try:
        drops, ignored = discover_drops(inbox, args.pfx)
    except PrefixError as err:
        return _fail(str(err), EXIT_BAD_INPUT)
    for name, reason in ignored:
        print(f"jwst-cal-ingest: ignoring {name}: {reason}", file=sys.stderr)
    if not drops:
        return _fail(f"no drops matching {args.pfx}*.csv in {inbox}", EXIT_BAD_INPUT)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_interrupted)
    rebuild = f"jwst-cal-ingest --rebuild -i {inbox} -o {out}"
    if args.rebuild:
        codes: list[int] = []
        _, status = _attempt(f"rebuild of {out}", f"abandoned, {out} unchanged", rebuild, lambda: rebuild_store(
            drops, out, save_l1=args.save_l1, lock_timeout=args.lock_timeout,
            on_day=lambda path, outcome: codes.append(_report_day(path.name, outcome))))
        if status == EXIT_OK:
            print(f"rebuilt {out} from {len(drops)} drops")
        return max([status, *codes])
    status = EXIT_OK
    for path in drops:
        outcome, code = _attempt(path.name, "not ingested", rebuild, lambda: _ingest(path, out, args))
        status = max(status, code if outcome is None else _report_day(path.name, outcome))
        if code > EXIT_BAD_INPUT:
            return code
    print(f"outputs in {out}")
    return status


def _ingest(path: Path, out: Path, args: argparse.Namespace) -> DayOutcome:
    """Read the drop once: bad input raises, accepted oddities are warned about, then the day is ingested."""
    read = read_day(path)
    if read.problems:
        raise read.problems[0]
    for oddity in read.oddities:
        print(f"jwst-cal-ingest: warning: {oddity}", file=sys.stderr)
    return ingest_scrubbed(read.scrubbed, out, save_l1=args.save_l1, lock_timeout=args.lock_timeout)


def _attempt(subject: str, failure: str, rebuild: str, work: Callable[[], T]) -> tuple[T | None, int]:
    """Run `work`: its result and EXIT_OK, or None and the exit status after printing one line saying why.

    The line reads "SUBJECT: FAILURE: cause"; `rebuild` is the command that rebuilds the output database.
    """
    try:
        return work(), EXIT_OK
    except DropError as err:
        code, cause = EXIT_BAD_INPUT, str(err).removeprefix(f"{subject}: ")
    except (StoreMissingError, StoreCorruptError) as err:
        code, cause = EXIT_ENVIRONMENT, f"{err}; restore it, or rebuild it from the drops: {rebuild}"
    except StoreError as err:
        code, cause = EXIT_ENVIRONMENT, str(err)
    except OSError as err:
        code, cause = EXIT_ENVIRONMENT, f"{err.strerror or err}: {err.filename}"
    except ExportIncompleteError as err:
        return None, _fail(f"{subject}: {err}", EXIT_EXPORT_INCOMPLETE)
    except Interrupted as err:
        code, cause = 128 + err.signum, str(err)
    except Exception as err:  # a bug: say so, with the traceback to report
        traceback.print_exc()
        code, cause = EXIT_INTERNAL, f"internal error: {type(err).__name__}: {err}"
    return None, _fail(f"{subject}: {failure}: {cause}", code)


def _report_day(name: str, outcome: DayOutcome) -> int:
    """Print the day's line; return its exit status."""
    report = outcome.report
    passed = not report.l3_unmatched
    print(
        f"{name}: rows {report.rows_read}, L1 {report.rows_l1}, L3 {report.rows_l3}, "
        f"priors pulled {report.priors_pulled}, L3 matched {report.l3_matched}/{report.l3_total}, "
        f"reprocessed {len(report.reprocessed)}, backlog {report.backlog}, "
        f"match-rate check {'passed' if passed else 'FAILED: ' + ', '.join(report.l3_unmatched)}",
        flush=True,
    )
    return EXIT_OK if passed else EXIT_CHECK_FAILED


def _fail(message: str, code: int) -> int:
    print(f"jwst-cal-ingest: {message}", file=sys.stderr, flush=True)
    return code


def _raise_interrupted(signum: int, _frame) -> None:
    raise Interrupted(signum)


if __name__ == "__main__":
    sys.exit(main())
