"""The HTTP API (FastAPI): ``create_app(settings)`` in :mod:`axhub.api.main`."""
