"""The chunker-change tests of test_rechunk.py against the MongoDB store
(FerretDB): the stored structure, the swap's seq check and the retired
collection refusing writes are the store's part of them."""
from mongo_fixtures import *  # noqa: F401,F403
from test_rechunk import (  # noqa: F401
    test_change_chunker,
    test_rechunk_cancel,
    test_writes_racing_the_swap_are_kept,
)
