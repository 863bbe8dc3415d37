"""A run: its directory and lock (its files named in `segtrain.paths`), the segment loop, and its runners."""
