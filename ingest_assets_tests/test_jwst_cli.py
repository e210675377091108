"""`jwst-cal-ingest` end to end: real files, the real Dagster assets in process, exit codes, kills, idempotence."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .golden import compare_outputs, golden_days
from .jwst_rows import l1, l3, write_drop

SMALL = golden_days("small-s2")


def cli(*args: str | Path, check_code: int | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "ingest_assets.jwst_cal_cli", *map(str, args)],
                          capture_output=True, text=True, timeout=600)
    if check_code is not None:
        assert proc.returncode == check_code, proc.stdout + proc.stderr
    return proc


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.csv"))}


@pytest.fixture()
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    for day in SMALL:
        shutil.copy(day.drop, folder)
    return folder


def test_cli_ingests_the_golden_days_like_the_reference(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    proc = cli("-i", inbox, "-o", out, "-s", check_code=1)  # day 1 leaves two L3 products unmatched, as spacekit
    lines = [line for line in proc.stdout.splitlines() if line.endswith((".csv", "passed")) or "check" in line]
    assert [line.split(":")[0] for line in lines] == [day.drop.name for day in SMALL]
    assert "FAILED: jw04596-o048_t001_nircam_clear-f150w" in lines[0] and lines[1].endswith("check passed")
    last = SMALL[-1]
    assert compare_outputs(last.expected_dir, out, previous_expected_dir=last.previous_expected_dir, run=last.run) == []

    # one call per day equals one call for all days, and a second full run changes no byte (D14)
    per_day = tmp_path / "per-day"
    for day in SMALL:
        cli("-i", inbox, "-o", per_day, "-s", "-p", day.date)
    assert snapshot(per_day) == snapshot(out)
    cli("-i", inbox, "-o", out, "-s", check_code=1)
    assert snapshot(per_day) == snapshot(out)


def test_reingesting_an_earlier_day_replays_the_later_ones(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    cli("-i", inbox, "-o", out, "-p", "2025-06-0[1-3]")
    before = snapshot(out)
    cli("-i", inbox, "-o", out, "-p", "2025-06-02")
    assert snapshot(out) == before


def test_bad_drop_is_rejected_and_changes_nothing(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    cli("-i", inbox, "-o", out, "-p", "2025-06-01")
    before = snapshot(out)
    bad = inbox / "2025-06-02_153.csv"
    text = bad.read_text().splitlines()
    header = text[0].split(",")
    col = header.index("CRVAL1")
    row = text[3].split(",")
    row[col] = "abc"
    text[3] = ",".join(row)
    bad.write_text("\n".join(text) + "\n")
    proc = cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=2)
    assert "2025-06-02_153.csv: not ingested: line 4, column CRVAL1: 'abc' is not a number" in proc.stderr
    assert snapshot(out) == before


def test_wrongly_named_files_are_ignored_with_a_warning(tmp_path: Path):
    inbox = tmp_path / "inbox"
    write_drop(inbox, "2025-06-01", [l1("jw01234001001_02101_00001_nrca1"),
                                     l3("jw01234-o001_t001_nircam_clear-f200w", 1.0)])
    (inbox / "2025-06-02_154.csv").write_text("x\n")
    proc = cli("-i", inbox, "-o", tmp_path / "out", check_code=0)
    assert "ignoring 2025-06-02_154.csv" in proc.stderr
    assert (tmp_path / "out" / "training.csv").exists()


def test_save_l1_takes_no_value(tmp_path: Path):
    proc = cli("-i", tmp_path, "-o", tmp_path, "-s", "False", check_code=2)
    assert "unrecognized arguments: False" in proc.stderr


def test_the_command_imports_no_dagster():
    """Its start-up cost is pandas, numpy and duckdb: the Dagster assets and the plotting stack stay out."""
    heavy = "{m.split('.')[0] for m in sys.modules} & {'dagster', 'astropy', 'matplotlib'}"
    proc = subprocess.run([sys.executable, "-c", f"import sys, ingest_assets.jwst_cal_cli; print(sorted({heavy}))"],
                          capture_output=True, text=True, timeout=600, check=True)
    assert proc.stdout == "[]\n"


SIGNALLED = textwrap.dedent("""
    import os, signal, sys
    from ingest_assets.jwst_cal import store
    where, signum = sys.argv[1], getattr(signal, sys.argv[2])
    if where == "before-commit":
        original = store.IngestStore.write_day
        def write_day(self, *a, **k):
            original(self, *a, **k)
            os.kill(os.getpid(), signum)
        store.IngestStore.write_day = write_day
    else:
        real_replace = os.replace
        def replace(src, dst):
            real_replace(src, dst)
            os.kill(os.getpid(), signum)
        store.os.replace = replace
    from ingest_assets.jwst_cal_cli import main
    sys.exit(main(sys.argv[3:]))
""")


def signalled(where: str, signal_name: str, *args: str | Path, **run) -> subprocess.CompletedProcess:
    """The CLI with `args`, sent `signal_name` by itself right after the day's write (before-commit) or after the
    export's first file (during-export)."""
    return subprocess.run([sys.executable, "-c", SIGNALLED, where, signal_name, *map(str, args)],
                          capture_output=True, text=True, timeout=600, **run)

@pytest.mark.parametrize("where", ["before-commit", "during-export"])
def test_a_killed_day_leaves_the_outputs_whole_and_can_be_rerun(inbox: Path, tmp_path: Path, where: str):
    out, clean = tmp_path / "out", tmp_path / "clean"
    cli("-i", inbox, "-o", out, "-p", "2025-06-01")
    cli("-i", inbox, "-o", clean, "-p", "2025-06-0[12]")
    before = snapshot(out)
    killed = signalled(where, "SIGKILL", "-i", inbox, "-o", out, "-p", "2025-06-02")
    assert killed.returncode == -9
    if where == "before-commit":
        assert snapshot(out) == before
    assert not list(out.glob("*.tmp*")) or where == "during-export"
    cli("-i", inbox, "-o", out, "-p", "2025-06-02")
    assert snapshot(out) == snapshot(clean)
    assert not [p for p in out.iterdir() if "tmp" in p.name]


def test_each_kind_of_bad_drop_fails_only_its_own_day(tmp_path: Path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    good = [l1("jw01234001001_02101_00001_nrca1"), l3("jw01234-o001_t001_nircam_clear-f200w", 1.0)]
    write_drop(inbox, "2025-06-01", good)
    (inbox / "2025-06-02_153.csv").write_text("")
    (inbox / "2025-06-03_154.csv").write_bytes(bytes(range(256)) * 4)
    header = write_drop(inbox, "2025-06-04", good).read_text().splitlines()[0]
    (inbox / "2025-06-04_155.csv").write_text(header + "\n")
    dup = write_drop(inbox, "2025-06-05", good)
    dup.write_text(dup.read_text().replace("PUPIL", "FILTER", 1))
    not_numeric = write_drop(inbox, "2025-06-06", good)
    not_numeric.write_text(not_numeric.read_text().replace(",15.5,", ",bright,"))
    proc = cli("-i", inbox, "-o", out, check_code=2)
    assert proc.stdout.startswith("2025-06-01_152.csv: rows 2")
    for name, reason in [("2025-06-02_153.csv", "empty"), ("2025-06-03_154.csv", "line"),
                         ("2025-06-04_155.csv", "no data rows"), ("2025-06-05_156.csv", "column FILTER"),
                         ("2025-06-06_157.csv", "column GS_MAG")]:
        line = next(line for line in proc.stderr.splitlines() if name in line)
        assert reason in line, proc.stderr
    assert len((out / "training.csv").read_text().splitlines()) == 2


def test_definitions_validate_from_the_workspace():
    proc = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
                           "workspace.yaml"], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).parent.parent)
    assert proc.returncode == 0, proc.stderr
    assert "Validation successful for code location ingest_assets" in proc.stdout + proc.stderr


# --- faults of the environment: one true line, an exit status, nothing lost -------------------------------------------
def test_a_terminated_day_says_whether_it_was_committed(inbox: Path, tmp_path: Path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    cli("-i", inbox, "-o", out, "-p", "2025-06-01")
    cli("-i", inbox, "-o", clean, "-p", "2025-06-0[12]")
    before = snapshot(out)
    args = ["-i", str(inbox), "-o", str(out), "-p", "2025-06-0[23]"]
    early = signalled("before-commit", "SIGTERM", *args)
    assert early.returncode == 143, early.stderr
    assert early.stderr == "jwst-cal-ingest: 2025-06-02_153.csv: not ingested: interrupted by SIGTERM\n"
    assert snapshot(out) == before

    late = signalled("during-export", "SIGTERM", *args)
    assert late.returncode == 4, late.stderr
    assert late.stderr.startswith("jwst-cal-ingest: 2025-06-02_153.csv: the day is committed to ")
    assert "(interrupted by SIGTERM); the export is completed the next time" in late.stderr
    assert "2025-06-03" not in late.stdout + late.stderr  # later days are not tried
    cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=0)
    assert snapshot(out) == snapshot(clean)


def test_an_export_that_fails_after_the_commit_is_exit_4_and_completed_by_the_next_run(inbox: Path, tmp_path: Path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    cli("-i", inbox, "-o", out, "-p", "2025-06-01")
    cli("-i", inbox, "-o", clean, "-p", "2025-06-0[12]")
    (out / "training.csv").unlink()
    (out / "training.csv").mkdir()
    proc = cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=4)
    assert "2025-06-02_153.csv: the day is committed to" in proc.stderr and "Is a directory" in proc.stderr
    proc = cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=3)  # the export cannot be completed yet
    assert "export of the last committed day could not be completed" in proc.stderr
    (out / "training.csv").rmdir()
    cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=0)
    assert snapshot(out) == snapshot(clean)


def test_a_deleted_database_is_refused_then_rebuilt_from_the_drops(inbox: Path, tmp_path: Path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    cli("-i", inbox, "-o", clean, "-s", check_code=1)
    cli("-i", inbox, "-o", out, "-s", "-p", "2025-06-0[12]")
    before = snapshot(out)
    (out / "jwst-cal.duckdb").unlink()
    proc = cli("-i", inbox, "-o", out, "-s", "-p", "2025-06-03", check_code=3)
    assert proc.stderr.startswith("jwst-cal-ingest: 2025-06-03_154.csv: not ingested: ")
    assert "but no jwst-cal.duckdb" in proc.stderr and f"--rebuild -i {inbox} -o {out}" in proc.stderr
    assert snapshot(out) == before and len(proc.stderr.splitlines()) == 1

    proc = cli("--rebuild", "-i", inbox, "-o", out, "-s", check_code=1)  # day 1 leaves L3 products unmatched
    assert proc.stdout.splitlines()[-1] == f"rebuilt {out} from {len(SMALL)} drops"
    assert snapshot(out) == snapshot(clean)
    assert not (out / ".jwst-cal-rebuild").exists()


def test_a_rebuild_that_meets_a_bad_drop_changes_nothing(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    cli("-i", inbox, "-o", out, "-p", "2025-06-0[12]")
    before = snapshot(out)
    (inbox / "2025-06-03_154.csv").write_text("Dataset\n")
    proc = cli("--rebuild", "-i", inbox, "-o", out, check_code=2)
    assert proc.stderr.splitlines()[-1] == (
        f"jwst-cal-ingest: rebuild of {out}: abandoned, {out} unchanged: 2025-06-03_154.csv: header only, no data rows")
    assert snapshot(out) == before and not (out / ".jwst-cal-rebuild").exists()
    cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=0)


def test_spacekit_outputs_without_a_database_are_never_overwritten(inbox: Path, tmp_path: Path):
    out = tmp_path / "spacekit-out"
    out.mkdir()
    (out / "training.csv").write_text("Dataset,imagesize\nold,1\n")
    proc = cli("-i", inbox, "-o", out, "-p", "2025-06-01", check_code=3)
    assert "holds training.csv but no jwst-cal.duckdb" in proc.stderr
    assert (out / "training.csv").read_text() == "Dataset,imagesize\nold,1\n"


def test_a_corrupt_database_is_refused_with_the_way_to_rebuild(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    cli("-i", inbox, "-o", out, "-p", "2025-06-01")
    before = snapshot(out)
    db = out / "jwst-cal.duckdb"
    db.write_bytes(db.read_bytes()[:1000])
    proc = cli("-i", inbox, "-o", out, "-p", "2025-06-02", check_code=3)
    assert "jwst-cal.duckdb is not a readable DuckDB database" in proc.stderr and "--rebuild" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and snapshot(out) == before


def test_a_database_held_by_a_notebook_is_waited_for_then_named(inbox: Path, tmp_path: Path):
    out = tmp_path / "out"
    cli("-i", inbox, "-o", out, "-p", "2025-06-01")
    notebook = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('open', flush=True);"
         " time.sleep(120)", str(out / "jwst-cal.duckdb")], stdout=subprocess.PIPE, text=True)
    try:
        assert notebook.stdout.readline().strip() == "open"
        proc = cli("-i", inbox, "-o", out, "-p", "2025-06-0[23]", "--lock-timeout", "1", check_code=3)
    finally:
        notebook.kill()
        notebook.wait()
    assert proc.stderr.startswith("jwst-cal-ingest: 2025-06-02_153.csv: not ingested: ")
    assert "jwst-cal.duckdb is in use by another process (waited 1 s" in proc.stderr
    assert "2025-06-03" not in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_two_processes_on_one_output_folder_serialize(inbox: Path, tmp_path: Path):
    out, clean = tmp_path / "out", tmp_path / "clean"
    cli("-i", inbox, "-o", clean, check_code=1)
    command = [sys.executable, "-m", "ingest_assets.jwst_cal_cli", "-i", str(inbox), "-o", str(out),
               "--lock-timeout", "300"]
    first, second = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                     for _ in range(2))
    for proc in (first, second):
        stdout, stderr = proc.communicate(timeout=600)
        assert proc.returncode == 1, stderr
    assert snapshot(out) == snapshot(clean)


def test_an_output_path_that_is_a_file_is_an_environment_failure(inbox: Path, tmp_path: Path):
    not_a_folder = tmp_path / "out"
    not_a_folder.write_text("")
    proc = cli("-i", inbox, "-o", not_a_folder, "-p", "2025-06-01", check_code=3)
    assert proc.stderr == f"jwst-cal-ingest: 2025-06-01_152.csv: not ingested: File exists: {not_a_folder}\n"


@pytest.mark.parametrize("pfx", ["../*", "/etc/", "../2025-06-01", "sub/2025"])
def test_a_prefix_is_never_a_path(inbox: Path, tmp_path: Path, pfx: str):
    proc = cli("-i", inbox, "-o", tmp_path / "out", "-p", pfx, check_code=2)
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_prefix_with_a_trailing_star_selects_by_name(inbox: Path, tmp_path: Path):
    proc = cli("-i", inbox, "-o", tmp_path / "out", "-p", "2025-06-0*", check_code=1)
    assert len([line for line in proc.stdout.splitlines() if "match-rate check" in line]) == len(SMALL)


def test_a_killed_run_leaves_nothing_in_the_temp_folder(inbox: Path, tmp_path: Path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    killed = signalled("before-commit", "SIGKILL", "-i", inbox, "-o", tmp_path / "out", "-p", "2025-06-01",
                       env={**os.environ, "TMPDIR": str(temp)})
    assert killed.returncode == -9
    assert list(temp.iterdir()) == []


def test_an_l3_row_without_image_size_is_ingested_with_a_warning(tmp_path: Path):
    inbox = tmp_path / "inbox"
    product = "jw01234-o001_t001_nircam_clear-f200w"
    path = write_drop(inbox, "2025-06-01", [l1("jw01234001001_02101_00001_nrca1"), l3(product, float("nan"))])
    proc = cli("-i", inbox, "-o", tmp_path / "out", check_code=0)
    assert proc.stderr == (f"jwst-cal-ingest: warning: {path.name}: line 3, column ImageSize: L3 product {product!r} "
                           "has no ImageSize: it is ingested but cannot become a training row\n")
    assert product in (tmp_path / "out" / "training.csv").read_text()
