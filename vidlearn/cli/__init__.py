"""Command-line interface: argument parsing and user-facing errors; no logic of its own."""
