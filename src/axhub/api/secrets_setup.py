"""At start: this hub's secret box for the process, and any clear-text SMTP password left by an
older version sealed with it (see core/secret_box.py)."""

from __future__ import annotations

import logging

from axhub.core import secret_box
from axhub.core.settings import Settings
from axhub.store.db import Database

log = logging.getLogger(__name__)


def seal_passwords(settings: Settings, db: Database) -> None:
    secret_box.use(settings)
    from axhub.serve.notify import seal_stored_passwords

    sealed = seal_stored_passwords(db)
    if sealed:
        log.info("sealed %d SMTP password(s) stored in the clear by an older version", sealed)
