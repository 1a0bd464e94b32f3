"""Scenario families (environments) used by pytest-teach test suites."""
