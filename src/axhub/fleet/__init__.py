"""The hub's side of the edge fleet: enrolment, revocation, heartbeats, store-and-forward
batches, pushed configuration and signed, staged bundle rollouts (``service.py``).

Layer: beside ``serve`` (uses ``core``, ``store``, ``registry`` and the edge agent's wire formats
in ``axhub.edge.buffer``/``axhub.edge.config``, which need nothing above ``core``).
"""
