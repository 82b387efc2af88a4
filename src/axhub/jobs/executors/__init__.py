"""Executors pull leased jobs from the queue and run them: in-process pool or Ray."""
