"""Benchmark of a year of daily JWST ingests: does a day cost the same on day 365 as on day 10?

Generates 365 drops with the shared generator (`../shared/tools/gen_raw.py --start 2025-01-01 --days 365 --seed 42`,
located next to the repository) into benchmarks/cache/year-s42 (git-ignored; reused when complete), or takes the
drops of --inbox. Ingests them day by day in this one process with the engine's `ingest_drop` (level-1 saving on,
as `make run`), timing each day from reading its drop to the end of its export, in wall-clock and in CPU seconds
(the CPU time of all the process's threads varies less on a shared machine). The machine's speed drifts within the
run (by 30% and more), which moves the first ten days against the last ten; so it then ingests both windows again,
in turns (--alternated rounds): the first ten drops into an empty folder, the last ten on a copy of the outputs
before them, so that a drift moves both alike. Prints the median day of the first and of the last ten days and their
ratio, in the run and in turns, the total, the peak memory and the sizes of the outputs, and writes them with every
day's times to benchmarks/results/year-LABEL.json (git-ignored).

Usage: python benchmarks/bench_year.py [--inbox DIR] [--days N] [--label NAME] [--code CHECKOUT] [--alternated ROUNDS]
(--code measures another checkout of the project, e.g. `git worktree add /tmp/before <commit>`.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GENERATOR = REPO.parent / "shared" / "tools" / "gen_raw.py"
YEAR = ("--start", "2025-01-01", "--seed", "42")
CACHE = HERE / "cache"
WINDOW = 10  # days per median


def generated_drops(name: str, days: int, *options: str) -> Path:
    """CACHE/name holding the `days` drops of `gen_raw.py --days DAYS OPTIONS`, generated first when absent or
    incomplete."""
    inbox = CACHE / name
    if len(list(inbox.glob("*_*.csv"))) == days:
        return inbox
    if not GENERATOR.is_file():
        sys.exit(f"the generator {GENERATOR} is absent (expected at ../shared/tools/gen_raw.py next to the "
                 "repository); pass --inbox DIR with daily drops instead")
    shutil.rmtree(inbox, ignore_errors=True)
    print(f"generating {days} day(s) of drops into {inbox} ...", flush=True)
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(inbox), "--days", str(days), *options],
                   check=True, capture_output=True)
    return inbox


def generated_year() -> Path:
    """The cached generated year (`gen_raw.py --start 2025-01-01 --days 365 --seed 42`)."""
    return generated_drops("year-s42", 365, *YEAR)


def folder_bytes(folder: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in folder.glob(pattern) if p.is_file())


def median_window(seconds: list[float], first_day: int) -> float | None:
    """Median time of the WINDOW days from day `first_day` (1-based), None when the run is shorter."""
    days = seconds[first_day - 1:first_day - 1 + WINDOW]
    return round(statistics.median(days), 3) if len(days) == WINDOW else None


def snapshot(out: Path, name: str) -> Path:
    """A copy of the output folder, written to disk (so that the copy does not slow a later fsync)."""
    copy = CACHE / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(out, copy)
    os.sync()
    return copy


def alternated(ingest, drops: list[Path], before_last: Path, rounds: int) -> dict:
    """The median day of the first WINDOW drops ingested into an empty folder and of the last WINDOW on a copy of
    `before_last` (the outputs before them), the two windows taking turns `rounds` times; the last over the first."""
    times: dict[str, list[float]] = {"first": [], "last": []}
    for _ in range(rounds):
        for name, state, window in (("first", None, drops[:WINDOW]), ("last", before_last, drops[-WINDOW:])):
            scratch = CACHE / "alternated"
            shutil.rmtree(scratch, ignore_errors=True)
            if state is not None:
                snapshot(state, scratch.name)
            for drop in window:
                start = time.perf_counter()
                ingest(drop, scratch, save_l1=True)
                times[name].append(time.perf_counter() - start)
    shutil.rmtree(CACHE / "alternated")
    first, last = (round(statistics.median(times[name]), 3) for name in ("first", "last"))
    return {"alternated_first_10_s": first, "alternated_last_10_s": last,
            "alternated_last_over_first": round(last / first, 2)}


def medians(prefix: str, seconds: list[float]) -> dict:
    """Median day of the first ten days, of days 91-100 and of the last ten days; last over first."""
    first, last = median_window(seconds, 1), median_window(seconds, len(seconds) - WINDOW + 1)
    return {f"{prefix}median_days_1_10_s": first, f"{prefix}median_days_91_100_s": median_window(seconds, 91),
            f"{prefix}median_last_10_s": last, f"{prefix}last_over_first": round(last / first, 2) if first else None}


def use_checkout(checkout: Path) -> None:
    """Import `ingest_assets` from another checkout: ahead of this one, and of its editable install's finder."""
    sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
    sys.path.insert(0, str(checkout.resolve()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inbox", type=Path, help="folder of YYYY-MM-DD_DDD.csv drops (default: the generated year)")
    parser.add_argument("--days", type=int, default=365, help="ingest only the first N days")
    parser.add_argument("--label", default="after", help="names the result file and the output folder")
    parser.add_argument("--code", type=Path, help="a checkout of the project whose engine to measure")
    parser.add_argument("--alternated", type=int, default=3, metavar="ROUNDS",
                        help="rounds of the first and last ten days in turns (0: none)")
    args = parser.parse_args()
    if args.code:
        use_checkout(args.code)

    from ingest_assets.jwst_cal.drops import discover_drops
    from ingest_assets.jwst_cal.pipeline import ingest_drop

    drops = discover_drops(args.inbox or generated_year())[0][:args.days]
    out = CACHE / f"out-{args.label}"
    shutil.rmtree(out, ignore_errors=True)
    seconds, cpu, before_last = [], [], None
    for i, path in enumerate(drops, start=1):
        if args.alternated and i == len(drops) - WINDOW + 1 > WINDOW:
            before_last = snapshot(out, f"state-{args.label}-{i - 1}")
        start, start_cpu = time.perf_counter(), time.process_time()
        ingest_drop(path, out, save_l1=True)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        if i % WINDOW == 0:
            print(f"day {i}: {seconds[-1]:.2f} s, median of the last {WINDOW}: {median_window(seconds, i - 9)} s, "
                  f"CPU {median_window(cpu, i - 9)} s", flush=True)
    results = {
        "label": args.label, "code": str(Path(sys.modules["ingest_assets"].__file__).parent.parent),
        "days": len(seconds), "first_day": drops[0].name, "last_day": drops[-1].name,
        **medians("", seconds), **medians("cpu_", cpu),
        **(alternated(ingest_drop, drops, before_last, args.alternated) if before_last else {}),
        "total_s": round(sum(seconds), 1), "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
        "database_mib": round(folder_bytes(out, "*.duckdb*") / 2**20, 1),
        "csv_mib": round(folder_bytes(out, "*.csv") / 2**20, 1),
        "level1_csv_mib": round(folder_bytes(out, "level1.csv") / 2**20, 1),
        "seconds_per_day": [round(s, 3) for s in seconds], "cpu_seconds_per_day": [round(s, 3) for s in cpu],
    }
    if before_last:
        shutil.rmtree(before_last)
    for key, value in results.items():
        if not key.endswith("per_day"):
            print(f"{key:22s} {value}")
    target = HERE / "results"
    target.mkdir(exist_ok=True)
    (target / f"year-{args.label}.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
