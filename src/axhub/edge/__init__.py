"""The edge agent: runs beside the machine, keeps working while the hub is away.

Layer rule: this package uses ``axhub.core``, the protocol connectors
(``axhub.ingest.connectors`` + ``axhub.ingest.tag_mapping``) and the bundle reader/runner
(``axhub.registry.bundle``) only. It never imports torch, scikit-learn, FastAPI, SQLAlchemy or
Ray (a test checks ``sys.modules``), so ``pip install axhub[edge]`` stays small.

Modules, one job each: ``buffer`` (durable SQLite WAL store-and-forward buffer with a disk
quota), ``scoring`` (bundles on live readings, local alerts), ``alerts`` (alert log + webhook),
``bundles`` (verify, swap atomically, health-check, roll back), ``hubclient`` (the HTTP calls),
``config`` (the agent's files), ``agent`` (the process).
"""
