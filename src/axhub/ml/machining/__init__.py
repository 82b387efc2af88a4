"""Machining outcome (CNC): tool condition, job completion and visual inspection from the
machine's own signals, classified per window and aggregated per experiment."""
