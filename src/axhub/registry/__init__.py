"""Model registry: bundles (ONNX + preprocessing JSON + manifest) and their verification.

``axhub.registry.bundle`` imports only numpy (and onnxruntime when running), so the edge agent
can use it; ONNX export helpers live in ``axhub.registry.export`` (needs onnx).
"""
