"""Whole-process benchmark of `jwst-cal-ingest` against spacekit 1.1.4's `jcal` command, side by side, on one day.

The day is `gen_raw.py --start 2025-08-01 --days 1 --seed 21 --scale 10` (22,112 rows), generated into
benchmarks/cache/day-2025-08-01-s21 (git-ignored) when absent, or the one drop of --inbox. Each repetition runs one
whole command (interpreter start, imports, ingest with level-1 saving, exit) into a fresh output folder, from a fresh
working directory (spacekit appends its log there), the two commands taking turns so that both see the same load;
its wall time is measured with time.perf_counter, its CPU time and peak RSS are the process's own (os.wait4).
Prints the medians (ours: --repeat, spacekit: --spacekit-repeat) and their ratios, the time of a process that only
imports our CLI module, and writes them to benchmarks/results/cli-vs-spacekit.json (git-ignored).

spacekit runs from its own virtual environment, outside the project; without one only ours is measured.
To create its environment (spacekit 1.1.4 needs pandas 2; these are the versions measured):
    python3 -m venv ../spacekit-venv
    ../spacekit-venv/bin/pip install spacekit==1.1.4 pandas==2.2.3 numpy==1.26.4 astropy==6.1.7 tensorflow==2.16.2
then pass --spacekit-python ../spacekit-venv/bin/python or set SPACEKIT_PYTHON.

Usage: python benchmarks/bench_cli_vs_spacekit.py [--repeat 5] [--spacekit-repeat 3] [--spacekit-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_year import HERE, generated_drops

DAY = ("--start", "2025-08-01", "--seed", "21", "--scale", "10")
SPACEKIT_SETUP = "To create" + __doc__.split("To create", 1)[1].split("\n\nUsage:", 1)[0]


def run_process(command: list[str], cwd: Path) -> tuple[float, float, int, int]:
    """Run `command` to its end: (wall seconds, CPU seconds, peak RSS in KiB, exit status); an exit above 1 raises."""
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        proc = subprocess.Popen(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):  # 1: ingested, but an L3 product stayed unmatched (both tools, on this day)
            log.seek(0)
            sys.exit(f"{' '.join(command)} failed with exit status {code}:\n{log.read().decode()[-3000:]}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss, code


def measure(commands: dict[str, tuple[list[str], int]], work: Path) -> dict[str, dict]:
    """Per name, its (command, repeat): runs of `command` + [-o OUT], each into a fresh OUT from a fresh working
    directory, the commands taking turns (so that both see the same load on a shared machine)."""
    runs: dict[str, list] = {name: [] for name in commands}
    for i in range(max(repeat for _, repeat in commands.values())):
        for name, (command, repeat) in commands.items():
            if i < repeat:
                cwd = work / f"{name}-{i}"
                cwd.mkdir()
                runs[name].append(run_process([*command, "-o", str(cwd / "out")], cwd))
                print(f"  {name} run {i + 1}: {runs[name][-1][0]:.2f} s", flush=True)
    return {name: {
        "median_s": round(statistics.median(r[0] for r in done), 3),
        "median_cpu_s": round(statistics.median(r[1] for r in done), 3), "runs_s": [round(r[0], 3) for r in done],
        "peak_rss_mib": round(max(r[2] for r in done) / 1024), "exit_status": done[0][3],
        "training_rows": sum(1 for _ in (work / f"{name}-0" / "out" / "training.csv").open()) - 1,
    } for name, done in runs.items()}


def measure_import(repeat: int, work: Path) -> dict:
    """Whole-process time of a bare interpreter and of one that only imports our CLI module (medians)."""
    bare = [run_process([sys.executable, "-c", "pass"], work)[0] for _ in range(repeat)]
    imports = [run_process([sys.executable, "-c", "import ingest_assets.jwst_cal_cli"], work) for _ in range(repeat)]
    return {"interpreter_s": round(statistics.median(bare), 3),
            "import_cli_s": round(statistics.median(r[0] for r in imports), 3),
            "import_cli_peak_rss_mib": round(max(r[2] for r in imports) / 1024)}


def spacekit_version(python: str) -> str:
    """The spacekit version installed for `python`; exits saying how to create its environment when there is none."""
    if not shutil.which(python):
        sys.exit(f"no interpreter {python}. {SPACEKIT_SETUP}")
    found = subprocess.run([python, "-c", "import importlib.metadata as m; print(m.version('spacekit'))"],
                           capture_output=True, text=True)
    if found.returncode:
        sys.exit(f"{python} has no spacekit. {SPACEKIT_SETUP}")
    return found.stdout.strip()


def print_table(results: dict) -> None:
    print(f"\nwhole CLI process on {results['day']} ({results['rows']} rows), level-1 saving on, medians")
    print(f"{'':22s} {'wall s':>8s} {'CPU s':>8s} {'peak MiB':>9s} {'training rows':>14s}")
    for name in ("ours", "spacekit"):
        if name in results:
            r = results[name]
            print(f"{name:22s} {r['median_s']:8.2f} {r['median_cpu_s']:8.2f} {r['peak_rss_mib']:9d} "
                  f"{r['training_rows']:14d}")
    imp = results["ours_import"]
    print(f"{'ours: import only':22s} {imp['import_cli_s']:8.2f} {'':8s} {imp['import_cli_peak_rss_mib']:9d}")
    print(f"{'python -c pass':22s} {imp['interpreter_s']:8.2f}")
    if "spacekit_over_ours" in results:
        print(f"spacekit / ours: {results['spacekit_over_ours']}x wall, {results['spacekit_over_ours_cpu']}x CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="runs of ours (median)")
    parser.add_argument("--spacekit-repeat", type=int, default=3, help="runs of spacekit (median)")
    parser.add_argument("--spacekit-python", default=os.environ.get("SPACEKIT_PYTHON"),
                        help="the interpreter of a virtual environment holding spacekit 1.1.4 ($SPACEKIT_PYTHON)")
    parser.add_argument("--inbox", type=Path, help="a folder holding the one drop to ingest (default: the 22k day)")
    args = parser.parse_args()
    inbox = (args.inbox or generated_drops("day-2025-08-01-s21", 1, *DAY)).resolve()
    drops = sorted(inbox.glob("*_*.csv"))
    if len(drops) != 1:
        sys.exit(f"{inbox} must hold exactly one drop, it holds {len(drops)}")
    results: dict = {"day": drops[0].name, "rows": sum(1 for _ in drops[0].open()) - 1}
    commands = {"ours": ([str(Path(sys.executable).parent / "jwst-cal-ingest"), "-i", str(inbox), "-s"],
                         args.repeat)}
    if args.spacekit_python:
        results["spacekit_version"] = spacekit_version(args.spacekit_python)
        commands["spacekit"] = ([args.spacekit_python, "-m", "spacekit.preprocessor.ingest", "jcal", "-i",
                                 str(inbox), "-s", "1"], args.spacekit_repeat)
    print(f"{drops[0].name}: {results['rows']} rows", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results["ours_import"] = measure_import(args.repeat, Path(tmp))
        results |= measure(commands, Path(tmp))
    if "spacekit" in results:
        for key, suffix in (("median_s", ""), ("median_cpu_s", "_cpu")):
            results[f"spacekit_over_ours{suffix}"] = round(results["spacekit"][key] / results["ours"][key], 1)
    else:
        print(f"\nspacekit not measured (no --spacekit-python, no SPACEKIT_PYTHON). {SPACEKIT_SETUP}")
    print_table(results)
    target = HERE / "results"
    target.mkdir(exist_ok=True)
    (target / "cli-vs-spacekit.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
