"""Pictures, plots, tables and reports: how results are shown to people."""
