"""A faster DynamoDB Query for moto's server, as the local stack uses it, and a moto
that does not keep every object it ever made.

moto 5.2 answers every Query by listing the whole table *sorted* (Table.all_items
sorts every item by its keys, comparing DynamoType objects in Python) and then
keeping the items of the one partition asked for: each Query costs O(n log n) in
the table's size. The local stack's mailbox grows by an item per message, so
under load most of moto's time (and most of the stack's) went there (see
bench/throughput.py).

While a Query runs, `all_items` here lists only what the Query can match, unsorted:
the asked-for partition of a table query, every item of an index query. Query
sorts what it keeps itself (by range key; an index query by the index's keys and
then the table's, which are unique), so its answer is the same.

And moto lists a response class's methods (inspect.getmembers) on every request to
find the action's; the list is remembered per class here.

And moto keeps every model object it ever makes (`BaseModel.__new__` appends each
to its class's `instances_tracked`, for its server's /moto-api/data.json
dashboard, emptied only by a reset, which a running stack never has): every
DynamoDB item written, every copy of one an update or a query makes, and a copy of
every table a TransactWriteItems writes (moto deep-copies them to roll back), all
kept for the stack's life. After one `make test` e2e session the stack held 7.7
million objects (710,000 items, of tables holding 17,000) in 1.2 GB; each full
garbage collection took 1.6 s of the stack's one interpreter, and its exit 13 s.
Here a model object is made as moto makes it, untracked: the local stack serves
no dashboard, and moto reads that list for nothing else.
"""

from __future__ import annotations

import functools
import inspect
import threading
from typing import Any

__all__ = ["apply", "remove"]

_SCOPE = threading.local()  # moto's server answers each connection in a thread
# moto's own Table.query and Table.all_items, while patched
_ORIGINALS: dict[str, Any] = {}
_NAMES = "method_names_from_class"


def _untracked_new(cls: Any, *args: Any, **kwargs: Any) -> Any:
    from moto.core.common_models import BaseModel

    return super(BaseModel, cls).__new__(cls)


def _candidates(table: Any, hash_key: Any) -> list[Any]:
    """The items a Query of `table` may match: unsorted, one partition when known."""
    if hash_key is None:
        buckets = list(table.items.values())
    else:
        bucket = table.items.get(hash_key)
        buckets = [] if bucket is None else [bucket]
    if not table.range_key_attr:
        return buckets
    return [item for bucket in buckets for item in bucket.values()]


def apply() -> None:
    """Patch moto's Table.query (once per process; moto is pinned in requirements.txt)."""
    from moto.core import responses
    from moto.core.common_models import BaseModel
    from moto.core.model_instances import reset_model_data
    from moto.dynamodb.models.table import Table

    if _ORIGINALS:
        return
    _ORIGINALS["new"] = vars(BaseModel)["__new__"]
    BaseModel.__new__ = staticmethod(_untracked_new)  # type: ignore[method-assign]
    reset_model_data()  # what was tracked so far
    original_names = _ORIGINALS["method_names_from_class"] = vars(responses)[_NAMES]
    setattr(responses, _NAMES, functools.cache(original_names))
    original_query = _ORIGINALS["query"] = Table.query
    original_all_items = _ORIGINALS["all_items"] = Table.all_items
    signature = inspect.signature(original_query)

    def all_items(self: Any) -> list[Any]:
        if getattr(_SCOPE, "table", None) is not self:
            return original_all_items(self)
        return _candidates(self, _SCOPE.hash_key)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        index = arguments.get("index_name")
        previous = getattr(_SCOPE, "table", None), getattr(_SCOPE, "hash_key", None)
        _SCOPE.table, _SCOPE.hash_key = self, None if index else arguments.get("hash_key")
        try:
            return original_query(self, *args, **kwargs)
        finally:
            _SCOPE.table, _SCOPE.hash_key = previous

    Table.all_items = all_items  # type: ignore[method-assign]
    Table.query = query  # type: ignore[method-assign]


def remove() -> None:
    """moto's own Query and tracking again (for tests)."""
    from moto.core import responses
    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.table import Table

    if _ORIGINALS:
        BaseModel.__new__ = _ORIGINALS.pop("new")  # type: ignore[method-assign]
        setattr(responses, _NAMES, _ORIGINALS.pop("method_names_from_class"))
        Table.query = _ORIGINALS.pop("query")  # type: ignore[method-assign]
        Table.all_items = _ORIGINALS.pop("all_items")  # type: ignore[method-assign]
