"""The review page (``vidret-milvus serve``): players whose progress bars mark the copied segments."""

from .app import ReviewApp, make_server

__all__ = ["ReviewApp", "make_server"]
