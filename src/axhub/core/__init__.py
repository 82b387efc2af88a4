"""The bottom layer: settings, ids, errors, time handling and the domain types.

Nothing here imports any other axhub layer.
"""
