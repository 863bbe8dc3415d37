"""Measuring a run and telling the user: probes, logs, trends, the report, status, progress and plot."""
