"""Shared test fixtures (register with ``pytest_plugins = ["tests._fixtures.s3server"]``)."""
