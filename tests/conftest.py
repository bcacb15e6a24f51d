"""Shared test helpers."""

from __future__ import annotations

import pytest


def _run_main(argv: list[str]) -> int:
    """Run the nnft CLI entry point in-process and return its exit code."""
    from nnft.cli import main

    try:
        main(argv)
    except SystemExit as exc:
        return 0 if exc.code is None else int(exc.code)
    return 0


@pytest.fixture
def run_cli():
    """``run_cli(argv) -> exit code`` of the in-process ``nnft`` entry point."""
    return _run_main
