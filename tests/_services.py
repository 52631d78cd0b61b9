"""Real backend services for tests: redis-server and moto's S3 server (see issue 3)."""

from __future__ import annotations

__all__: list[str] = []
