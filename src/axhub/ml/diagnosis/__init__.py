"""Bearing fault diagnosis from vibration: order-normalised features + a tree ensemble."""
