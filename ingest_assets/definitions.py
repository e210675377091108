"""The project's Dagster definitions: the JWST calibration ingest and the HST SVM alignment ingest."""

import warnings

import dagster as dg

# Partitioned check specs and backfill policies are Preview/Beta in Dagster 1.13; the project pins 1.13.27.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
# jwst_priors runs a backfill range in one step while the other assets run one day per run: intended.
warnings.filterwarnings("ignore", message="Asset job .* varying BackfillPolicies", category=UserWarning)

from ingest_assets.defs import alerts, hst_svm, jwst_cal  # noqa: E402

defs = dg.Definitions.merge(jwst_cal.defs, hst_svm.defs, alerts.defs)
