"""
Sharding across instances on the MongoDB store: the tests of
test_sharding.py with the unsharded reference and the 4 sharded instances
on FerretDB (mongo_fixtures.py) instead of SQLite. The sharded instances
share one database (they share a data dir, which names it), as they share
the SQLite file there; a sharded instance needs the store's scans to name
each chunk's document, which the MongoDB backend must therefore do. The
instances keep index.snapshot=false (test_sharding.Cluster): they share a
data dir, so one snapshot file.
"""
import pytest

import test_sharding
from mongo_fixtures import *  # noqa: F401,F403
from test_sharding import (test_internal_endpoint_searches_only_local_shards,  # noqa: F401
                           test_killed_replica_queries_stay_complete_and_it_catches_up,
                           test_shards_split_the_corpus_and_answer_like_one_instance)


@pytest.fixture
def cluster(tmp_path, ferretdb):
    c = test_sharding.Cluster(tmp_path)
    for srv in [c.ref, *c.nodes]:
        srv.env = ferretdb.ragd_env(srv.data_dir, srv.env)
    try:
        c.start()
        yield c
    finally:
        c.close()
