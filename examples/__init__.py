"""Example canvases."""
