"""Production performance: machine states, part counts, shift calendars and OEE (ISO 22400).

Layer: uses ``core`` and ``store`` only (a peer of ``serve``); the API, dashboard and CLI sit above.
"""
