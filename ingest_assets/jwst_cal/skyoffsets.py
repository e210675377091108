"""Per-product sky-offset features (spec section 5 with D5), vectorized over all products at once.

Every statistic is bit-identical to numpy on the product's float64 offsets in group order: sums use numpy's
pairwise summation, replicated segment by segment.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .constants import ARCSEC_TO_DEG, OFFSET_STATS, TARG_STATS

DEG_TO_RAD = np.pi / 180.0
LANES = np.arange(8)  # numpy's pairwise sum keeps 8 running accumulators
LEAF = 128  # longest run numpy sums without splitting
OUTPUT_COLS = ("n_valid", "ref", "fx_ra", "fy_dec", "offset", "targ_offset") + OFFSET_STATS + TARG_STATS + (
    "t_offset", "gs_offset")


# --- numpy's pairwise summation, per segment --------------------------------------------------------------------------
def pairwise_sum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Sum of each segment values[s:s+n], bit-identical to np.add.reduce on that float64 slice."""
    values = np.asarray(values, dtype=np.float64)
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    # np.add.reduce adds the pairwise sum to its identity 0.0 (which turns -0.0 into 0.0).
    return _pairwise(values, starts, lengths) + 0.0


def _pairwise(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Runs up to LEAF summed directly; longer ones split at a multiple of 8 near the half, recursively."""
    total = np.empty(len(starts))
    short = lengths < 8
    leaf = ~short & (lengths <= LEAF)
    split = lengths > LEAF
    total[short] = _add_in_order(np.zeros(short.sum()), values, starts[short], lengths[short])
    total[leaf] = _blocked_sum(values, starts[leaf], lengths[leaf])
    if split.any():
        first, n = starts[split], lengths[split]
        half = n // 2
        half -= half % 8
        halves = _pairwise(values, np.concatenate([first, first + half]), np.concatenate([half, n - half]))
        total[split] = halves[: len(first)] + halves[len(first):]
    return total


def _add_in_order(total: np.ndarray, values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """total + values[s] + values[s+1] + ..., one element at a time."""
    for i in range(int(lengths.max(initial=0))):
        live = i < lengths
        total[live] += values[starts[live] + i]
    return total


def _blocked_sum(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """numpy's 8-accumulator loop for 8 <= n <= LEAF, then the leftover elements in order."""
    body = lengths - lengths % 8
    acc = values[starts[:, None] + LANES]
    for i in range(8, int(body.max(initial=0)), 8):
        live = i < body
        acc[live] += values[starts[live, None] + i + LANES]
    total = ((acc[:, 0] + acc[:, 1]) + (acc[:, 2] + acc[:, 3])) + ((acc[:, 4] + acc[:, 5]) + (acc[:, 6] + acc[:, 7]))
    return _add_in_order(total, values, starts + body, lengths - body)


# --- geometry ---------------------------------------------------------------------------------------------------------
def angular_separation_deg(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Vincenty separation in degrees from point 1 to point 2 (inputs in degrees, RA taken mod 360), as astropy does."""
    dlon = (np.mod(ra2, 360.0) - np.mod(ra1, 360.0)) * DEG_TO_RAD
    lat1, lat2 = np.asarray(dec1, dtype=np.float64) * DEG_TO_RAD, np.asarray(dec2, dtype=np.float64) * DEG_TO_RAD
    s1, c1, s2, c2 = np.sin(lat1), np.cos(lat1), np.sin(lat2), np.cos(lat2)
    cdlon = np.cos(dlon)
    num1 = c2 * np.sin(dlon)
    num2 = c1 * s2 - s1 * c2 * cdlon
    den = s1 * s2 + c1 * c2 * cdlon
    return np.rad2deg(np.arctan2(np.hypot(num1, num2), den))


def _pixel_offset(ra1, dec1, ra2, dec2, scale) -> np.ndarray:
    """Separation from point 1 to point 2 in detector pixels of the given scale (arcsec/pixel)."""
    return angular_separation_deg(ra1, dec1, ra2, dec2) * 3600.0 / scale


def _footprint_centre(ra, dec, scale, nx, ny, starts) -> tuple[np.ndarray, np.ndarray]:
    """Product fiducial per segment: midrange, in xyz, of all exposures' footprint corners (spec 5 steps 2-3)."""
    sx = (nx / 2 * scale) * ARCSEC_TO_DEG
    sy = (ny / 2 * scale) * ARCSEC_TO_DEG
    lon = np.deg2rad(np.stack([ra - sx, ra + sx, ra + sx, ra - sx], axis=1))
    lat = np.deg2rad(np.stack([dec - sy, dec - sy, dec + sy, dec + sy], axis=1))
    xyz = (np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat))
    xm, ym, zm = (
        (np.maximum.reduceat(c.max(axis=1), starts) + np.minimum.reduceat(c.min(axis=1), starts)) / 2.0 for c in xyz)
    fx_ra = np.rad2deg(np.arctan2(ym, xm)) % 360.0
    fy_dec = np.rad2deg(np.arctan2(zm, np.sqrt(xm**2 + ym**2)))
    return fx_ra, fy_dec


# --- statistics -------------------------------------------------------------------------------------------------------
def _segment_stats(o: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> dict[str, np.ndarray]:
    """max/mean/std/err of each non-empty segment and the mean and share of its values above mean + std."""
    seg = np.repeat(np.arange(len(starts)), lengths)
    n = lengths.astype(np.float64)
    mean = pairwise_sum(o, starts, lengths) / n
    dev = o - mean[seg]
    sigma = np.sqrt(pairwise_sum(dev * dev, starts, lengths) / n)
    above = o > (mean + sigma)[seg]
    k = np.bincount(seg[above], minlength=len(starts))
    above_sum = pairwise_sum(o[above], np.cumsum(k) - k, k)
    return {
        "max_offset": np.maximum.reduceat(o, starts),
        "mean_offset": mean,
        "sigma_offset": sigma,
        "err_offset": sigma / np.sqrt(n),
        "sigma1_mean": np.divide(above_sum, k, out=np.zeros(len(k)), where=k > 0),
        "frac": k / n,
    }


def _first_minimum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Index of the first element equal to its segment's minimum, per non-empty segment."""
    seg_min = np.minimum.reduceat(values, starts)
    lengths = np.diff(np.append(starts, len(values)))
    candidates = np.where(values == np.repeat(seg_min, lengths), np.arange(len(values)), len(values))
    return np.minimum.reduceat(candidates, starts)


# --- products ---------------------------------------------------------------------------------------------------------
def product_offsets(group, ra, dec, targ_ra, targ_dec, gs_ra, gs_dec, scale, nx, ny) -> pd.DataFrame:
    """Sky-offset features per product; exposures arrive grouped (group == repeat(arange(G), sizes)).

    An exposure with a non-finite fiducial (ra/dec) takes no part (D5); a product without any valid exposure gets
    NaN fiducial, t_offset and gs_offset, 0.0 offsets and statistics, and its first exposure as `ref`.
    NaN target or guide-star coordinates give NaN; a latitude beyond +-90 gives 0.0 (spec 5 step 11).
    """
    group = np.asarray(group, dtype=np.int64)
    ra, dec, targ_ra, targ_dec, gs_ra, gs_dec, scale = (
        np.asarray(a, dtype=np.float64) for a in (ra, dec, targ_ra, targ_dec, gs_ra, gs_dec, scale))
    nx, ny = np.broadcast_to(nx, group.shape), np.broadcast_to(ny, group.shape)
    sizes = np.bincount(group)
    n_groups = len(sizes)
    first = np.cumsum(sizes) - sizes

    pos = np.flatnonzero(np.isfinite(ra) & np.isfinite(dec))
    vgroup = group[pos]
    n_valid = np.bincount(vgroup, minlength=n_groups)
    has = n_valid > 0
    vstarts = (np.cumsum(n_valid) - n_valid)[has]
    vra, vdec, vscale = ra[pos], dec[pos], scale[pos]

    out = {"n_valid": n_valid, "ref": first.copy()}
    out["fx_ra"], out["fy_dec"] = np.full(n_groups, np.nan), np.full(n_groups, np.nan)
    out["fx_ra"][has], out["fy_dec"][has] = _footprint_centre(vra, vdec, vscale, nx[pos], ny[pos], vstarts)

    offset = _pixel_offset(out["fx_ra"][vgroup], out["fy_dec"][vgroup], vra, vdec, vscale)
    targ_first = first[vgroup]
    targ_offset = _pixel_offset(targ_ra[targ_first], targ_dec[targ_first], vra, vdec, vscale)
    ref = _first_minimum(offset, vstarts)
    out["ref"][has] = pos[ref]
    for name, values in (("offset", offset[ref]), ("targ_offset", targ_offset[ref])):
        out[name] = np.zeros(n_groups)
        out[name][has] = values
    for prefix, o in (("", offset), ("targ_", targ_offset)):
        for name, values in _segment_stats(o, vstarts, n_valid[has]).items():
            out[prefix + name] = np.zeros(n_groups)
            out[prefix + name][has] = values

    r = out["ref"]
    # A latitude beyond +-90 makes astropy raise in the reference, which then keeps 0.0 (GS is computed first).
    gs_fails = has & (np.abs(gs_dec[r]) > 90)
    t_fails = gs_fails | (has & (np.abs(targ_dec[r]) > 90))
    t_offset = _pixel_offset(out["fx_ra"], out["fy_dec"], targ_ra[r], targ_dec[r], scale[r])
    gs_offset = _pixel_offset(out["fx_ra"], out["fy_dec"], gs_ra[r], gs_dec[r], scale[r])
    out["t_offset"], out["gs_offset"] = np.where(t_fails, 0.0, t_offset), np.where(gs_fails, 0.0, gs_offset)
    return pd.DataFrame({c: out[c] for c in OUTPUT_COLS})
