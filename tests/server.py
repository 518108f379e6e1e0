"""Where the server-marked tests (``@pytest.mark.server``) find a real Milvus server.

1. ``VIDRET_TEST_SERVER_URI``: any server. ``make test`` sets it: it starts the embedded Milvus
   standalone of the PyPI package ``milvus`` (2.3.5) with ``scripts/milvus_server.py`` and stops
   it afterwards. With the repository's ``docker-compose.yml``: ``docker compose up -d``, then
   ``VIDRET_TEST_SERVER_URI=http://localhost:19530 pytest -m server``.
2. Otherwise, when a Docker engine answers: a throwaway container per test session
   (testcontainers' ``MilvusContainer``, image ``VIDRET_TEST_MILVUS_IMAGE``, default below).
3. Otherwise the tests are skipped, and the skip says why.

Each test works under its own collection prefix (:func:`unique_prefix`) and drops its
collections at the end, so tests can share one server, also with concurrent runs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

SERVER_ENV = "VIDRET_TEST_SERVER_URI"
IMAGE_ENV = "VIDRET_TEST_MILVUS_IMAGE"
DEFAULT_IMAGE = "milvusdb/milvus:v2.5.16"  # the version docker-compose.yml runs


def unique_prefix(tag: str = "t") -> str:
    return f"{tag}_{uuid.uuid4().hex[:16]}"


def drop_prefix(uri: str, prefix: str) -> None:
    """Drop the three collections of ``prefix`` (best effort: a test's clean-up must not mask its result)."""
    from vidret_milvus.store import Store

    try:
        with Store.connect(uri, prefix=prefix) as store:
            store.drop()
    except Exception as exc:  # noqa: BLE001
        print(f"warning: could not drop the collections of prefix {prefix!r} on {uri}: {exc}")


def docker_unavailable() -> str | None:
    """None when testcontainers can start a container here, else why not."""
    try:
        try:
            import testcontainers.community.milvus  # noqa: F401  (testcontainers >= 4.6)
        except ImportError:
            import testcontainers.milvus  # noqa: F401
        import docker
    except ImportError as exc:
        return f"testcontainers is not installed ({exc.name})"
    try:
        client = docker.from_env(timeout=5)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001  (no socket, no permission, no engine...)
        return f"no Docker engine answers: {type(exc).__name__}: {str(exc)[:200]}"
    return None


def _check_reachable(uri: str) -> None:
    from vidret_milvus.errors import StoreError
    from vidret_milvus.store import Store

    try:
        with Store.connect(uri, prefix="probe", timeout=15) as store:
            store.client.list_collections(timeout=15)
    except (StoreError, Exception) as exc:  # noqa: BLE001
        pytest.fail(f"{SERVER_ENV}={uri} is set but the server does not answer: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def server_uri() -> Iterator[str]:
    """URI of a real Milvus server, or the test is skipped with the reason."""
    uri = os.environ.get(SERVER_ENV, "").strip()
    if uri:
        _check_reachable(uri)  # set but dead is a failure, never a silent skip
        yield uri
        return
    why = docker_unavailable()
    if why is not None:
        pytest.skip(f"needs a Milvus server: set {SERVER_ENV} (`make test` starts one) or run a Docker engine ({why})")
    try:
        from testcontainers.community.milvus import MilvusContainer
    except ImportError:
        from testcontainers.milvus import MilvusContainer
    container = MilvusContainer(os.environ.get(IMAGE_ENV, DEFAULT_IMAGE))
    container.start()
    try:
        yield container.get_connection_url()
    finally:
        container.stop()


@pytest.fixture
def server_prefix(server_uri: str) -> Iterator[str]:
    """A fresh collection prefix on the server, dropped after the test."""
    prefix = unique_prefix()
    yield prefix
    drop_prefix(server_uri, prefix)
