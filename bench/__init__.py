"""Benchmarks of the running product (real web, worker and sandbox seller processes). Not tests: they print
figures. Start with ``.venv/bin/python bench/run_all.py``; see ``bench/common.py`` for the environment."""
