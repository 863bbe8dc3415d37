"""A run: its directory (paths, manifest, lock), the segment loop, and the runners behind it."""
