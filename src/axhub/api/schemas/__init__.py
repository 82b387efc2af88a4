"""Request and response bodies of the API (pydantic v2)."""
