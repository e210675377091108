"""HST single-visit-mosaic (SVM) alignment ingest: pure pandas/astropy/matplotlib logic, no Dagster import."""
