"""JWST calibration-metadata ingest: pure pandas/numpy logic, no Dagster import."""
