"""AX Hub: an open, self-hostable manufacturing AI platform."""

__version__ = "0.1.0"
