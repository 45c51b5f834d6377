"""Conformance suites: every adapter of a port subclasses the suite's class."""
