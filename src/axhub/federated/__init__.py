"""Federated learning across companies on Flower: each member keeps its raw data and enforces
its own site policy; only parameters and aggregates leave a site. See docs/federated.md."""
