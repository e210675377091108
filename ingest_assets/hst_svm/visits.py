"""Visit directories in the SVM inbox: naming, total products, readiness and change fingerprints."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .constants import CRPT_DIR_RE, NUM_SOURCES_SUFFIX, VISIT_DIR_RE


class SvmInputError(ValueError):
    """A visit's input files are missing, unreadable or inconsistent."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (library errors can span dozens of lines)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def is_visit_name(name: str) -> bool:
    """True for a real (`ipppss`) or synthetic (`ipppss_<filter>_<all|sub>_<stat|stoc>`) visit dir name."""
    return re.match(VISIT_DIR_RE, name) is not None


def is_crpt(visit: str) -> bool:
    """True for a synthetic (corrupted) visit, whose rows get a name suffix and `label` = 1."""
    return re.match(CRPT_DIR_RE, visit) is not None


def crpt_suffix(visit: str) -> str:
    """`_<filter>_<expos>_<mode>` of a synthetic visit, '' for a real one (from the dir name, not its path)."""
    return "_" + visit.split("_", 1)[1] if is_crpt(visit) else ""


def product_index(product: str, visit: str) -> str:
    """Row key of a total product in `visit`: its name, plus the synthetic suffix."""
    return product + crpt_suffix(visit)


def index_product(index: str, visit: str) -> str:
    """Total product name behind a row key of `visit`."""
    suffix = crpt_suffix(visit)
    return index[: len(index) - len(suffix)] if suffix else index


def total_products(visit_dir: Path) -> dict[str, Path]:
    """Total drizzled products of a visit dir, product name -> FITS path. When a product has both, the CTE-corrected
    `drc` wins over the `drz`: drizzlepac's total product of ACS/WFC and WFC3/UVIS, whose QA JSONs name it as the
    `imgname` that the header metrics are read from (spec 1.1, 1.4)."""
    ipppss = visit_dir.name[:6]
    products: dict[str, Path] = {}
    for path in sorted(visit_dir.glob(f"*_total_{ipppss}_dr[zc].fits")):  # _drc sorts before _drz
        products.setdefault(path.name[: -len("_drz.fits")], path)
    return dict(sorted(products.items()))


def missing_for_readiness(visit_dir: Path) -> list[str]:
    """What a visit dir still lacks before it can be ingested ([] when complete): a total FITS at all, the
    num_sources JSON of each total FITS, and the FITS of each product that has a num_sources JSON."""
    ipppss = visit_dir.name[:6]
    products = total_products(visit_dir)
    counted = {p.name.removesuffix(NUM_SOURCES_SUFFIX) for p in visit_dir.glob(f"*_total_{ipppss}{NUM_SOURCES_SUFFIX}")}
    if not products and not counted:
        return [f"*_total_{ipppss}_dr[zc].fits"]
    return sorted([f"{p}{NUM_SOURCES_SUFFIX}" for p in products.keys() - counted]
                  + [f"{p}_dr[zc].fits" for p in counted - products.keys()])


@dataclass(frozen=True)
class VisitState:
    """Files of one visit dir: a fingerprint of names, sizes and mtimes, and when anything last changed."""

    fingerprint: str
    last_change: float


def visit_state(visit_dir: Path) -> VisitState:
    """Fingerprint and last change time (mtime or ctime, so copies that keep old mtimes still count) of a dir."""
    stats = sorted((p.relative_to(visit_dir).as_posix(), p.stat()) for p in visit_dir.rglob("*") if p.is_file())
    digest = hashlib.sha1(repr([(n, s.st_size, s.st_mtime_ns) for n, s in stats]).encode()).hexdigest()[:16]
    last = max([visit_dir.stat().st_mtime] + [max(s.st_mtime, s.st_ctime) for _, s in stats])
    return VisitState(digest, last)


@dataclass(frozen=True)
class InboxScan:
    """Visits found in an inbox: ready ones (name -> fingerprint), incomplete ones (name -> reason), ignored names."""

    ready: dict[str, str]
    waiting: dict[str, str]
    ignored: list[str]


def scan_inbox(inbox: Path, now: float, settle_seconds: float) -> InboxScan:
    """Classify the dirs of `inbox`; a visit is ready when complete and unchanged for `settle_seconds`."""
    ready: dict[str, str] = {}
    waiting: dict[str, str] = {}
    ignored: list[str] = []
    entries = sorted(inbox.iterdir()) if inbox.is_dir() else []
    for entry in entries:
        if not entry.is_dir() or not is_visit_name(entry.name):
            ignored.append(entry.name)
            continue
        missing = missing_for_readiness(entry)
        state = visit_state(entry)
        if missing:
            waiting[entry.name] = "missing " + ", ".join(missing)
        elif now - state.last_change < settle_seconds:
            waiting[entry.name] = f"changed less than {settle_seconds:g} s ago"
        else:
            ready[entry.name] = state.fingerprint
    return InboxScan(ready, waiting, ignored)
