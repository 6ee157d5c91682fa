"""Figures and the verdict report, read from results stores only (never the engines)."""
