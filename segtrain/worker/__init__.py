"""Segment workers: the parent<->worker protocol, the handle the parent holds, the child's entry point."""
