"""The ``axhub`` command line (typer + rich). Each module here with a ``register(app)``
function adds its commands; none is listed by hand."""
