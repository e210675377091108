"""Shared pytest configuration."""

from __future__ import annotations


def pytest_configure(config):
    """Register the markers used by the suite."""
    config.addinivalue_line("markers", "ui: starts the real `dagster dev` (webserver + daemon) in a subprocess")
