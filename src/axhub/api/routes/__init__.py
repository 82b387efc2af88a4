"""One router per resource; ``ROUTERS`` is what :func:`axhub.api.main.create_app` mounts."""
