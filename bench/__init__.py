"""Benchmarks: run by hand (see bench/README.md), never collected by pytest."""
