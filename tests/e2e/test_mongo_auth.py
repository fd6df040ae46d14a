"""
API keys on the MongoDB store: the tests of test_auth.py that keep keys in
the store, run against a ragd whose store is MongoDB (FerretDB) instead of
SQLite (mongo_fixtures.py). Keys created through the admin API, listed
without secrets, kept across a restart and revoked at once; another
tenant's keys (and data) answer 404; per-key limits stored with the key
give 429s.
"""
from mongo_fixtures import *  # noqa: F401,F403
from test_auth import (srv, test_key_lifecycle_and_restart,  # noqa: F401
                       test_missing_and_bad_keys_are_401,
                       test_quotas_answer_429_with_retry_after, test_roles,
                       test_tenants_cannot_reach_each_others_data)
