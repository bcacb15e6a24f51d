"""HTML assembly of experiment results."""

from .html import render_report as render_report

__all__ = ["render_report"]
