"""Crash-safe files: fsynced append-only logs, atomically replaced tables, a line index, the retry window."""
