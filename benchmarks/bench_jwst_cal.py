"""Benchmark of the JWST ingest on a ~100k-row day (`gen_raw.py --seed 7 --scale 50`, bundled gzipped).

Prints medians and ratios: a bare pandas.read_csv of the file (for scale), the engine (read + validate + scrub +
day ingest, in memory), its peak memory, and the end-to-end CLI (Dagster assets, DuckDB commit, CSV export).
Usage: python benchmarks/bench_jwst_cal.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
DAY = HERE / "data" / "2025-04-10_100.csv.gz"
REFERENCE_SECONDS = 300.0  # spacekit 1.1.4 on the same day (spec / issue figure)

ENGINE = """
import sys, time, resource
from pathlib import Path
from ingest_assets.jwst_cal.day import DayTables, ingest_day
from ingest_assets.jwst_cal.pipeline import scrub_file
start = time.perf_counter()
result = ingest_day(scrub_file(Path(sys.argv[1])), DayTables.empty(), save_l1=True)
elapsed = time.perf_counter() - start
print(elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, result.outcome.report.products)
"""


def median_of(runs: int, fn) -> tuple[float, list[float]]:
    times = [fn() for _ in range(runs)]
    return statistics.median(times), times


def time_read_csv(path: Path) -> float:
    import pandas as pd

    start = time.perf_counter()
    pd.read_csv(path)
    return time.perf_counter() - start


def time_engine(path: Path) -> tuple[float, int, int]:
    proc = subprocess.run([sys.executable, "-c", ENGINE, str(path)], capture_output=True, text=True, check=True)
    seconds, rss_kb, products = proc.stdout.split()
    return float(seconds), int(rss_kb), int(products)


def time_cli(inbox: Path, out: Path) -> float:
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ingest_assets.jwst_cal_cli", "-i", str(inbox), "-o", str(out), "-s"],
                   capture_output=True, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        inbox = Path(tmp, "inbox")
        inbox.mkdir()
        path = inbox / DAY.name.removesuffix(".gz")
        with gzip.open(DAY, "rb") as src, path.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        rows = sum(1 for _ in path.open()) - 1
        read_med, _ = median_of(args.repeat, lambda: time_read_csv(path))
        engine = [time_engine(path) for _ in range(args.repeat)]
        engine_med = statistics.median(e[0] for e in engine)
        peak_mib = max(e[1] for e in engine) / 1024
        cli_med, _ = median_of(max(1, args.repeat // 2), lambda: time_cli(inbox, Path(tmp, "out")))
    results = {
        "rows": rows, "products": engine[0][2], "repeat": args.repeat,
        "read_csv_median_s": round(read_med, 3), "read_csv_rows_per_s": round(rows / read_med),
        "engine_median_s": round(engine_med, 3), "engine_rows_per_s": round(rows / engine_med),
        "engine_over_read_csv": round(engine_med / read_med, 2),
        "engine_peak_rss_mib": round(peak_mib), "cli_end_to_end_median_s": round(cli_med, 2),
        "speedup_vs_spacekit": round(REFERENCE_SECONDS / engine_med),
    }
    for key, value in results.items():
        print(f"{key:28s} {value}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
