"""Real HTTP servers on 127.0.0.1 for tests (the same helper the demo uses)."""

from watcher.api.serving import serve_asgi

__all__ = ["serve_asgi"]
