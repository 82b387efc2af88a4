"""Storage layer: metadata database (``db``/``models``/``scoped``), time series, blobs."""
