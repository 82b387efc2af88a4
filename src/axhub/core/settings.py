"""Settings from the environment (``AXHUB_*``) with embedded defaults under ``~/.axhub``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_datasets_root() -> Path:
    """``../shared/datasets`` beside the checkout (the layout of this project's workspace).

    Looked up from the current directory first, then from the source tree, so that both
    ``axhub bench`` run from the repo root and tests run from anywhere find it.
    """
    candidates = [Path.cwd() / ".." / "shared" / "datasets"]
    candidates += [p / "shared" / "datasets" for p in Path(__file__).resolve().parents]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return candidates[0].resolve()


DEFAULT_ORG_FILE = "default-org"


def saved_default_org(home: Path) -> str:
    """The company slug ``axhub init`` chose for this home ('' when none)."""
    try:
        return (home / DEFAULT_ORG_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def save_default_org(home: Path, slug: str) -> None:
    """Remember ``slug`` as the company of later commands run without ``--org``."""
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{DEFAULT_ORG_FILE}.tmp"
    tmp.write_text(slug + "\n", encoding="utf-8")
    tmp.replace(home / DEFAULT_ORG_FILE)


class Settings(BaseSettings):
    """Where AX Hub keeps its state. Every field can be set as ``AXHUB_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="AXHUB_", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".axhub")
    database_url: str = ""
    data_root: Path | None = None
    datasets: Path = Field(default_factory=_default_datasets_root)
    # Default organisation used by the single-company embedded CLI: AXHUB_DEFAULT_ORG, else the
    # company `axhub init --org` made (kept in <home>/default-org), else "demo".
    default_org: str = ""
    # Fernet key for secrets kept at rest (SMTP passwords); empty: <home>/secrets.key (core/secret_box.py).
    secrets_key: str = Field(default="", repr=False)
    # Sign-in needs the company code (sign-in names are per company). Off: an e-mail alone is
    # tried against each account that has it, which a tenant can time (docs/security.md).
    signin_requires_company: bool = False

    @model_validator(mode="after")
    def _fill_derived(self) -> Settings:
        self.home = self.home.expanduser()
        if self.data_root is None:
            self.data_root = self.home / "data"
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'axhub.db'}"
        if not self.default_org:
            self.default_org = saved_default_org(self.home) or "demo"
        return self

    @property
    def timeseries_root(self) -> Path:
        assert self.data_root is not None
        return self.data_root / "timeseries"

    @property
    def blob_root(self) -> Path:
        assert self.data_root is not None
        return self.data_root / "blobs"

    def ensure_dirs(self) -> None:
        assert self.data_root is not None
        for path in (self.home, self.data_root, self.timeseries_root, self.blob_root):
            path.mkdir(parents=True, exist_ok=True)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own ``Settings`` instead."""
    return Settings()
