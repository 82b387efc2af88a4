"""Ingestion: connectors, tag mapping, the ingest worker, the dead-letter store and file ingest.

File ingest (CSV/Parquet): ``from axhub.ingest.files import ingest_file`` with a
``axhub.ingest.file_mapping.FileMapping``; kept out of this module's namespace so that the
edge agent can import connectors without pulling in the store.
"""
