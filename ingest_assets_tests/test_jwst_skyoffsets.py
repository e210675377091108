"""Sky-offset features (spec section 5, D5) against numpy, astropy and hand-computed geometry."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord

from ingest_assets.jwst_cal.skyoffsets import angular_separation_deg, pairwise_sum, product_offsets

ARCSEC = 1 / 3600
SEPARATION_COLS = ["fx_ra", "fy_dec", "offset", "targ_offset", "t_offset", "gs_offset"]


def bits(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).view(np.int64)


# --- pairwise_sum -----------------------------------------------------------------------------------------------------
def test_pairwise_sum_is_bit_identical_to_numpy():
    rng = np.random.default_rng(7)
    values = rng.normal(size=5000) * 10.0 ** rng.uniform(-8, 8, 5000)
    lengths = np.concatenate([np.arange(401), [7, 8, 9, 15, 16, 17, 128, 129, 130, 256, 257, 1000, 4000]])
    lengths = rng.permutation(lengths)
    starts = rng.integers(0, values.size - lengths + 1)
    expected = [np.add.reduce(values[s:s + n]) for s, n in zip(starts, lengths)]
    np.testing.assert_array_equal(bits(pairwise_sum(values, starts, lengths)), bits(expected))


def test_pairwise_sum_signed_zero_and_empty_like_numpy():
    values = np.array([-0.0] * 20 + [1e16, 1.0, -1e16, 1.0] * 40)
    starts, lengths = np.array([0, 0, 0, 20, 21, 3]), np.array([1, 10, 0, 160, 130, 0])
    expected = [np.add.reduce(values[s:s + n]) for s, n in zip(starts, lengths)]
    np.testing.assert_array_equal(bits(pairwise_sum(values, starts, lengths)), bits(expected))


# --- angular separation -----------------------------------------------------------------------------------------------
def test_angular_separation_matches_astropy():
    rng = np.random.default_rng(3)
    n = 20000
    ra1, dec1 = rng.uniform(-400, 760, n), rng.uniform(-90, 90, n)
    near = rng.random(n) < 0.5
    ra2 = np.where(near, ra1 + rng.normal(size=n) * 1e-3, rng.uniform(0, 360, n))
    dec2 = np.where(near, np.clip(dec1 + rng.normal(size=n) * 1e-3, -90, 90), rng.uniform(-90, 90, n))
    ra2[:3], dec2[:3] = ra1[:3], dec1[:3]  # identical points
    ra2[3], dec2[3] = ra1[3] + 180, -dec1[3]  # antipodes
    expected = SkyCoord(ra1 % 360, dec1, unit="deg").separation(SkyCoord(ra2 % 360, dec2, unit="deg")).deg
    np.testing.assert_allclose(angular_separation_deg(ra1, dec1, ra2, dec2), expected, rtol=1e-12, atol=0)


def test_angular_separation_of_nan_is_nan():
    assert np.isnan(angular_separation_deg(np.nan, 0.0, 1.0, 1.0))
    assert np.isnan(angular_separation_deg(1.0, 1.0, 2.0, np.nan))


# --- product_offsets vs a per-group reference -------------------------------------------------------------------------
def numpy_stats(o: np.ndarray, prefix: str) -> dict:
    """Offset statistics computed with plain numpy calls on one product's offsets."""
    mean, sigma = np.mean(o), np.std(o)
    above = o[o > mean + sigma]
    return {
        f"{prefix}max_offset": np.max(o), f"{prefix}mean_offset": mean, f"{prefix}sigma_offset": sigma,
        f"{prefix}err_offset": sigma / np.sqrt(len(o)),
        f"{prefix}sigma1_mean": np.mean(above) if len(above) else 0.0,
        f"{prefix}frac": len(above) / len(o) if len(above) else 0.0,
    }


def reference_product(first: int, ra, dec, targ_ra, targ_dec, gs_ra, gs_dec, scale, nx, ny) -> dict:
    """One product computed directly from spec section 5 with numpy and astropy SkyCoord."""
    valid = np.flatnonzero(~(np.isnan(ra) | np.isnan(dec)))
    if valid.size == 0:  # D5
        return {"n_valid": 0, "ref": first, "fx_ra": np.nan, "fy_dec": np.nan, "offset": 0.0, "targ_offset": 0.0,
                **{k: 0.0 for k in numpy_stats(np.ones(1), "")}, **{k: 0.0 for k in numpy_stats(np.ones(1), "targ_")},
                "t_offset": np.nan, "gs_offset": np.nan}
    corners = []
    for e in valid:
        sx = (nx[e] / 2 * scale[e] * u.arcsec).to_value(u.deg)
        sy = (ny[e] / 2 * scale[e] * u.arcsec).to_value(u.deg)
        corners += [(ra[e] - sx, dec[e] - sy), (ra[e] + sx, dec[e] - sy), (ra[e] + sx, dec[e] + sy),
                    (ra[e] - sx, dec[e] + sy)]
    lon, lat = np.deg2rad(np.array(corners)).T
    x, y, z = np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)
    xm, ym, zm = ((np.max(c) + np.min(c)) / 2.0 for c in (x, y, z))
    fx, fy = np.rad2deg(np.arctan2(ym, xm)) % 360.0, np.rad2deg(np.arctan2(zm, np.sqrt(xm**2 + ym**2)))

    centre, points = SkyCoord(fx, fy, unit="deg"), SkyCoord(ra[valid], dec[valid], unit="deg")
    offsets = centre.separation(points).arcsecond / scale[valid]
    targ = SkyCoord(targ_ra[0], targ_dec[0], unit="deg")
    targ_offsets = targ.separation(points).arcsecond / scale[valid]
    r = valid[np.flatnonzero(offsets == offsets.min())[0]]
    row = {
        "n_valid": valid.size, "ref": first + r, "fx_ra": fx, "fy_dec": fy,
        "offset": offsets.min(), "targ_offset": targ_offsets[valid == r][0],
        **numpy_stats(offsets, ""), **numpy_stats(targ_offsets, "targ_"),
    }
    row["t_offset"] = row["gs_offset"] = 0.0
    try:  # astropy rejects a latitude beyond +-90: both stay 0.0, as in spec 5 step 11
        row["gs_offset"] = centre.separation(SkyCoord(gs_ra[r], gs_dec[r], unit="deg")).arcsecond / scale[r]
        row["t_offset"] = centre.separation(SkyCoord(targ_ra[r], targ_dec[r], unit="deg")).arcsecond / scale[r]
    except ValueError:
        pass
    return row


def random_exposures(rng, sizes) -> pd.DataFrame:
    """Dithered pointings around random product centres, some near RA 0/360 and the poles, some NaN fiducials."""
    n_groups, n = len(sizes), int(np.sum(sizes))
    group = np.repeat(np.arange(n_groups), sizes)
    centre_ra = rng.choice([rng.uniform(0, 360), 0.0, 359.9999, 120.0], size=n_groups)
    centre_dec = rng.choice([rng.uniform(-60, 60), 89.99, -89.99, 0.0, 45.0], size=n_groups)
    dither = rng.choice([0.0, 2.0, 60.0], size=n_groups)  # arcsec; 0 gives identical pointings
    ra = np.repeat(centre_ra, sizes) + rng.normal(size=n) * np.repeat(dither, sizes) * ARCSEC
    dec = np.clip(np.repeat(centre_dec, sizes) + rng.normal(size=n) * np.repeat(dither, sizes) * ARCSEC, -90, 90)
    ra[rng.random(n) < 0.05] = np.nan
    dec[rng.random(n) < 0.02] = np.nan
    targ_ra = np.repeat(centre_ra, sizes) + rng.normal(size=n) * 5 * ARCSEC
    targ_dec = np.clip(np.repeat(centre_dec, sizes) + rng.normal(size=n) * 5 * ARCSEC, -90, 90)
    no_target = np.repeat(rng.random(n_groups) < 0.1, sizes)
    targ_ra[no_target] = np.nan
    gs_ra, gs_dec = targ_ra + 0.05, targ_dec - 0.05
    gs_dec[rng.random(n) < 0.1] = np.nan
    scale, shape = rng.choice([0.03, 0.06, 0.11, 0.12, 0.196], size=n), rng.choice([1024, 1032, 2048], size=(2, n))
    return pd.DataFrame({"group": group, "ra": ra, "dec": dec, "targ_ra": targ_ra, "targ_dec": targ_dec,
                         "gs_ra": gs_ra, "gs_dec": gs_dec, "scale": scale, "nx": shape[0], "ny": shape[1]})


def run(exp: pd.DataFrame) -> pd.DataFrame:
    return product_offsets(*(exp[c].to_numpy() for c in exp.columns))


def test_product_offsets_match_numpy_and_astropy_per_group():
    rng = np.random.default_rng(11)
    sizes = np.concatenate([[1, 2, 3, 7, 8, 9, 16, 17, 128, 129, 130, 257, 300], rng.integers(1, 301, 110)])
    exp = random_exposures(rng, sizes)
    starts = np.cumsum(sizes) - sizes
    exp.loc[starts[2:6], "ra"] = np.nan  # a first exposure without fiducial still supplies the target
    exp.loc[starts[6]:starts[7] - 1, "dec"] = np.nan  # a product without any fiducial
    got = run(exp)

    rows = [reference_product(s, *(g[c].to_numpy() for c in exp.columns[1:])) for s, (_, g) in
            zip(starts, exp.groupby("group", sort=True))]
    expected = pd.DataFrame(rows)

    assert list(got.columns) == list(expected.columns)
    assert got["n_valid"].tolist() == expected["n_valid"].tolist()
    assert got["ref"].tolist() == expected["ref"].tolist()
    np.testing.assert_allclose(got[SEPARATION_COLS], expected[SEPARATION_COLS], rtol=1e-12, atol=0)
    stats = [c for c in got.columns if c not in SEPARATION_COLS + ["n_valid", "ref"]]
    np.testing.assert_array_equal(got[stats].to_numpy(), expected[stats].to_numpy())
    assert (got["frac"] > 0).any() and (got["frac"] == 0).any() and (got["n_valid"] == 0).any()
    assert got["targ_max_offset"].isna().any() and got["gs_offset"].isna().any()


# --- hand-checkable products ------------------------------------------------------------------------------------------
def exposures(ra, dec, targ=(10.0, 2 * ARCSEC), gs=(10.0, -3 * ARCSEC), scale=0.1, group=0) -> pd.DataFrame:
    n = len(ra)
    return pd.DataFrame({"group": group, "ra": np.asarray(ra, float), "dec": np.asarray(dec, float),
                         "targ_ra": targ[0], "targ_dec": targ[1], "gs_ra": gs[0], "gs_dec": gs[1],
                         "scale": np.full(n, scale), "nx": 2048, "ny": 2048})


# On the equator: one exposure 1" west, seven at RA 10, one 1" east. The footprint centre is (10, 0), so the offsets
# at 0.1"/pixel are 10, 0 x7, 10 pixels.
NINE_RA = [10 - ARCSEC] + [10.0] * 7 + [10 + ARCSEC]


def check_nine(row: pd.Series, ref: int):
    assert row["n_valid"] == 9 and row["ref"] == ref
    approx = dict(rel=1e-8, abs=1e-6)
    assert row["fx_ra"] == pytest.approx(10.0, rel=1e-12) and row["fy_dec"] == pytest.approx(0.0, abs=1e-12)
    assert row["offset"] == pytest.approx(0.0, **approx)
    assert row["max_offset"] == pytest.approx(10.0, **approx)
    assert row["mean_offset"] == pytest.approx(20 / 9, **approx)
    assert row["sigma_offset"] == pytest.approx(10 * np.sqrt(14) / 9, **approx)
    assert row["err_offset"] == pytest.approx(10 * np.sqrt(14) / 27, **approx)
    assert row["sigma1_mean"] == pytest.approx(10.0, **approx)
    assert row["frac"] == pytest.approx(2 / 9, rel=1e-15)
    # target 2" north of the centre: 20 px from the seven central exposures, sqrt(1 + 4)" from the outer ones
    assert row["targ_offset"] == pytest.approx(20.0, **approx)
    assert row["targ_max_offset"] == pytest.approx(10 * np.sqrt(5), **approx)
    assert row["targ_frac"] == pytest.approx(2 / 9, rel=1e-15)
    assert row["t_offset"] == pytest.approx(20.0, **approx)
    assert row["gs_offset"] == pytest.approx(30.0, **approx)


def test_hand_computed_product():
    check_nine(run(exposures(NINE_RA, [0.0] * 9)).iloc[0], ref=1)


def test_single_exposure_has_no_spread():
    row = run(exposures([150.0], [40.0])).iloc[0]
    assert row["n_valid"] == 1 and row["ref"] == 0
    assert row["offset"] > 0  # no cos(dec) in the footprint, so the centre is not the pointing itself
    assert row["max_offset"] == row["mean_offset"] == row["offset"]
    assert row["sigma_offset"] == row["err_offset"] == row["sigma1_mean"] == row["frac"] == 0.0
    assert row["targ_sigma_offset"] == row["targ_sigma1_mean"] == row["targ_frac"] == 0.0


def test_identical_pointings_have_nothing_above_one_sigma():
    row = run(exposures([150.0] * 3, [40.0] * 3)).iloc[0]
    assert row["n_valid"] == 3 and row["ref"] == 0
    assert row["max_offset"] == row["offset"]
    assert row["sigma_offset"] == pytest.approx(0.0, abs=1e-12 * row["offset"])
    assert row["sigma1_mean"] == row["frac"] == row["targ_sigma1_mean"] == row["targ_frac"] == 0.0


def test_nan_fiducial_is_left_out():
    base = exposures(NINE_RA, [0.0] * 9)
    with_nans = pd.concat([base.iloc[:1].assign(ra=np.nan), base.iloc[:5], base.iloc[:1].assign(dec=np.nan),
                           base.iloc[5:]], ignore_index=True)
    row = run(with_nans).iloc[0]
    check_nine(row, ref=2)
    pd.testing.assert_series_equal(row.drop("ref"), run(base).iloc[0].drop("ref"))


def test_product_without_valid_fiducial():
    nine = exposures(NINE_RA, [0.0] * 9)
    empty = exposures([np.nan, 10.0], [0.0, np.nan], group=1)
    got = run(pd.concat([nine, empty, nine.assign(group=2)], ignore_index=True))
    row = got.iloc[1]
    assert row["n_valid"] == 0 and row["ref"] == 9
    assert row[["fx_ra", "fy_dec", "t_offset", "gs_offset"]].isna().all()
    assert (row.drop(["n_valid", "ref", "fx_ra", "fy_dec", "t_offset", "gs_offset"]) == 0.0).all()
    check_nine(got.iloc[0], ref=1)
    check_nine(got.iloc[2], ref=12)


def test_nan_target_gives_nan_target_statistics():
    row = run(exposures(NINE_RA, [0.0] * 9, targ=(np.nan, np.nan))).iloc[0]
    assert row[["targ_offset", "targ_max_offset", "targ_mean_offset", "targ_sigma_offset", "targ_err_offset",
                "t_offset"]].isna().all()
    assert row["targ_sigma1_mean"] == row["targ_frac"] == 0.0
    assert row["max_offset"] == pytest.approx(10.0, rel=1e-8) and row["gs_offset"] == pytest.approx(30.0, rel=1e-8)


def test_guide_star_beyond_the_pole_gives_zero():
    row = run(exposures(NINE_RA, [0.0] * 9, gs=(10.0, -91.0))).iloc[0]
    assert row["gs_offset"] == row["t_offset"] == 0.0
    assert row["targ_max_offset"] == pytest.approx(10 * np.sqrt(5), rel=1e-8)


@pytest.mark.parametrize("west", [360 - 0.5 * ARCSEC, -0.5 * ARCSEC])
def test_ra_wrap_around_zero(west):
    # 0.5" either side of RA 0 on the equator: 5 px from the centre at 0.1"/pixel, not 360 degrees
    row = run(exposures([west, 0.5 * ARCSEC, 0.0], [0.0] * 3, targ=(0.0, 0.0), gs=(359.0, 0.0))).iloc[0]
    assert min(row["fx_ra"], 360 - row["fx_ra"]) < 1e-12 and row["fy_dec"] == pytest.approx(0.0, abs=1e-12)
    assert row["offset"] == pytest.approx(0.0, abs=1e-6) and row["ref"] == 2
    assert row["max_offset"] == pytest.approx(5.0, rel=1e-8)
    assert row["targ_max_offset"] == pytest.approx(5.0, rel=1e-8)
    assert row["t_offset"] == pytest.approx(0.0, abs=1e-6)
    assert row["gs_offset"] == pytest.approx(36000.0, rel=1e-8)
