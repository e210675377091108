"""The pure pipeline on a real output database: state kept between days, replay, codes persisted (D12, D14, D16)."""

from __future__ import annotations

from pathlib import Path

from ingest_assets.jwst_cal.pipeline import ingest_drop
from ingest_assets.jwst_cal.store import IngestStore

from .jwst_rows import l1, l3, write_drop


def group(prefix: str, obs: str, **values) -> list[dict]:
    return [l1(f"{prefix}_0000{i}_nrca{i}", CRVAL1=10 + i * 1e-4, DETECTOR=f"NRCA{i}", OBSERVTN=obs, **values)
            for i in (1, 2, 3)]


def product(obs: str, filt: str) -> list[dict]:
    return group(f"jw01234{obs}001_02101", obs, FILTER=filt, PUPIL="NONE") + [
        l3(f"jw01234-o{obs}_t001_nircam_{filt.lower()}", 1e6, OBSERVTN=obs, FILTER=filt, PUPIL="NONE")]


def test_codes_and_state_survive_the_database_and_replays(tmp_path: Path):
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    drops = [
        write_drop(inbox, "2025-06-01", [{**l1("jw01234001001_02101_00001_nrca1"), "DagNodeName": "LEVEL_2"}]),
        write_drop(inbox, "2025-06-02", product("001", "F200W")),
        write_drop(inbox, "2025-06-03", product("002", "F999X")),
        write_drop(inbox, "2025-06-04", product("003", "F998X") + product("004", "F999X")),
    ]
    reports = [ingest_drop(d, out).report for d in drops]
    assert reports[0].l3_total == 0 and all(r.match_rate == 1.0 for r in reports)
    files = {p.name: p.read_bytes() for p in out.glob("*.csv")}
    assert files["category_codes.csv"].decode().splitlines() == ["column,value,code", "filter,F999X,52",
                                                                 "filter,F998X,53"]
    train = files["train-image.csv"].decode().splitlines()
    assert [line.split(",")[4] for line in train[1:]] == ["23", "52", "53", "52"]

    ingest_drop(drops[0], out)  # re-ingesting the first day replays the three later ones
    assert {p.name: p.read_bytes() for p in out.glob("*.csv")} == files
    with IngestStore(out) as store:
        assert store.days() == ["2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04"]
