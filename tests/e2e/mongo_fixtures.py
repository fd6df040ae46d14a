"""
Fixtures that put the ragd servers of a test module on the MongoDB store
(FerretDB, tests/e2e/ferretdb_server.py). A module does

    from mongo_fixtures import *  # noqa: F401,F403

and every server its tests start through ragd, ragd_factory,
ragd_module_factory or ragd_backend keeps its documents, chunks, change
log, jobs and sessions in MongoDB (a database per data dir) instead of
data_dir/ragd.db. Tests imported from other modules then run unchanged
against that store. The vector backend is the in-process flat index only:
the chroma pass adds nothing about the store.
"""
from pathlib import Path

import pytest

from conftest import Backend, RagdServer, ServerFactory, auth_args
from ferretdb_server import start_ferretdb


class MongoServerFactory(ServerFactory):
    """ServerFactory whose servers use the MongoDB store of one FerretDB."""

    def __init__(self, tmp_dir_fn, ferretdb):
        super().__init__(tmp_dir_fn)
        self.ferretdb = ferretdb

    def __call__(self, extra_args=(), data_dir=None, env=None, default_index=None, keys=None,
                 ssl_context=None):
        base = self._tmp_dir_fn()
        data_dir = Path(data_dir) if data_dir else base / "data"
        tokens = None
        if keys:
            flags, tokens = auth_args(keys, base)
            extra_args = [*flags, *extra_args]
        srv = RagdServer(data_dir, base, extra_args, self.ferretdb.ragd_env(data_dir, env),
                         default_index, tokens, ssl_context)
        self.servers.append(srv)
        srv.start()
        return srv


@pytest.fixture(scope="module")
def ferretdb(tmp_path_factory):
    """The module's own FerretDB server."""
    srv = start_ferretdb(tmp_path_factory.mktemp("ferretdb"))
    yield srv
    srv.stop()


@pytest.fixture
def ragd_factory(tmp_path_factory, ferretdb):
    f = MongoServerFactory(lambda: tmp_path_factory.mktemp("ragd"), ferretdb)
    yield f
    f.close()


@pytest.fixture(scope="module")
def ragd_module_factory(tmp_path_factory, ferretdb):
    f = MongoServerFactory(lambda: tmp_path_factory.mktemp("ragd"), ferretdb)
    yield f
    f.close()


@pytest.fixture(scope="module")
def backend():
    return Backend("flat")
