"""
Search on the MongoDB store: the search-mode and API tests of
test_search_modes.py and test_api.py, run against a ragd whose store is
MongoDB (FerretDB) instead of SQLite (mongo_fixtures.py).
"""
from mongo_fixtures import *  # noqa: F401,F403
from test_api import (corpus, test_collections_crud, test_delete_document,  # noqa: F401
                      test_deleted_collection_stays_deleted, test_get_document,
                      test_long_document_is_chunked, test_paraphrase_top1_rate,
                      test_replace_document, test_replace_long_with_short,
                      test_restart_gives_identical_results, test_search_result_shape,
                      test_concurrent_writes_and_searches, test_crash_recovery,
                      test_unicode_text_round_trip)
from test_search_modes import (modes, test_hybrid_fuses_both_rankings,  # noqa: F401
                               test_hybrid_is_the_default, test_lexical_finds_rare_terms,
                               test_lexical_follows_deletes_replacements_and_restarts,
                               test_weighted_fusion)
