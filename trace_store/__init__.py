"""Trace storage: codec, object-store backends, Postgres index and patches, writer, merge."""
