"""Live scoring: the streaming scorer and alert rules."""
