"""
Metadata filters on the MongoDB store, where they are compiled to MongoDB
queries (src/store/store_mongo_filter.c): the cases of test_filters.py,
checked against the same Python oracle, on a ragd whose store is MongoDB.
"""
from mongo_fixtures import *  # noqa: F401,F403
from test_filters import (corpus, many, typed, test_bad_filter,  # noqa: F401
                          test_filter, test_filters_follow_replace_and_delete,
                          test_filters_survive_restart, test_minority_filter_fills_top_k,
                          test_no_filter_is_unfiltered, test_odd_field_names_never_leak_documents,
                          test_rare_matches_in_a_big_collection, test_results_stay_ranked,
                          test_values_compare_only_within_their_type)
