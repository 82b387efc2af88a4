"""Python SDK over the AX Hub API: ``from axhub.client import AxHubClient``."""

from axhub.client.sdk import AxHubApiError, AxHubClient, load_credentials, save_credentials

__all__ = ["AxHubApiError", "AxHubClient", "load_credentials", "save_credentials"]
