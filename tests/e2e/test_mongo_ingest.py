"""
Ingestion, jobs, document listing and sessions on the MongoDB store: the
tests of test_ingest.py and test_query.py that exercise the store (uploads,
batch jobs and their resumption after kill -9, with no item applied twice
over a client's later write, unchanged documents and chunk reuse,
pagination with filters, deletes, sessions continued by another instance)
on a ragd whose store is MongoDB.
"""
from mongo_fixtures import *  # noqa: F401,F403
from test_ingest import (srv, test_batch_bad_requests_store_nothing,  # noqa: F401
                         test_batch_job_counts_errors_and_throughput,
                         test_delete_document_removes_chunks, test_formats_and_attribution,
                         test_job_item_never_reapplied_over_later_writes,
                         test_job_resumes_after_kill, test_jobs_not_found_and_cancel,
                         test_list_documents_pagination_and_filter, test_size_limits,
                         test_unchanged_and_chunk_reuse, test_upload_errors)
from test_query import (extractive, test_extractive_answer_cites_sentences,  # noqa: F401
                        test_extractive_filters, test_session_continued_by_another_instance)
