"""The HTML report: one self-contained file (plotly's JavaScript inlined, no CDN)."""

from health_monitor.report.html import SECTIONS, Section, build_sections, write_report

__all__ = ["SECTIONS", "Section", "build_sections", "write_report"]
