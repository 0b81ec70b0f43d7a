"""moto made faster where the local stack's load found it slow (Query, UpdateItem,
writing answers), and a moto that does not keep every object it ever made. Each
change answers as moto answers: tests/unit/local/test_moto_speedups.py compares
them with moto's own.

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

And an UpdateItem cost moto ten times a PutItem (2.2 ms against 0.18 ms on an idle
machine; 3.9 ms each under `bench/throughput.py`'s load, 44% of moto's time there,
every send counting its rate limits with one): it parsed the update expression
twice, deep-copied the tree twice, and walked it with ten validators twice (once
before making a new item, once after), each walk building its table of node types
afresh at every node, and three of them comparing every clause with every other.
Here (`_faster_updates`):
- an expression is parsed once (moto's parser, remembered per expression; every use
  of the tree copies it or only reads it);
- the tree is copied by a copier of its own (moto's nodes hold a type name, their
  children and their parent; any other tree still goes through `deepcopy`);
- each validator looks its node types up once per class of node;
- the three validators that read only the expression, its attribute names and the
  table's keys (clause counts, overlapping paths, key attributes) run once per
  such triple that passed them; the seven that read the item or the values run as
  before. An expression they refuse is refused each time, as moto refuses it.
An UpdateItem takes 0.78 ms on the same machine, with the same answer and the same
errors.

And moto writes every answer by walking the operation's output shape; for each
member of each structure it asks six alias providers where that member might be
found in the result (its name, its snake_case form, its serialization name, its
name less its parent's or its class's prefix...), building each provider afresh.
A DynamoDB answer is a dict, and each attribute value of each item in it a
structure of ten members of which one is present: that search was about a tenth
of the stack's time under load (writing answers, a sixth). Where the result is a
plain dict, the list of names to try depends only on the member's shape, its
parent shape and the name, so it is made once per (shape, parent, name) here
(`_faster_answers`); the names are tried in the same order, so the same value is
found. Once a member's names are known, a plain dict is searched for them without
the context object moto builds for each member and each lookup (no transformer
applies to DynamoDB's answers): a Query answer of ten items is written in 0.87 ms
instead of 3.16.

And moto parses a condition or filter expression afresh at every use, twice for a
conditional write (once to check the names it uses, once to apply it): lexing it
with regular expressions and rewriting its list of tokens seven times, about 60 to
140 µs an expression, where making the conditions from the finished tree takes 2 to
5. Here (`_faster_conditions`) the finished tree is remembered per (expression,
attribute names); only its values differ from one use to the next, and they are put
in afresh from each request's own, looked up as moto looks them up (a value the
request lacks is refused as moto refuses it). An expression moto refuses is never
remembered, so it is refused each time by moto's own parse.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
from collections.abc import Iterator
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
    """Apply every change above to moto (once per process; moto is pinned in
    requirements.txt)."""
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
    _faster_updates()
    _faster_answers()
    _faster_conditions()


def applied() -> bool:
    """Whether moto runs with the changes above."""
    return bool(_ORIGINALS)


def remove() -> None:
    """moto as it comes again (for tests)."""
    from moto.core import responses
    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.table import Table

    if _ORIGINALS:
        BaseModel.__new__ = _ORIGINALS.pop("new")  # type: ignore[method-assign]
        setattr(responses, _NAMES, _ORIGINALS.pop("method_names_from_class"))
        Table.query = _ORIGINALS.pop("query")  # type: ignore[method-assign]
        Table.all_items = _ORIGINALS.pop("all_items")  # type: ignore[method-assign]
        _restore_updates()
        _restore_answers()
        _restore_conditions()


# -- UpdateItem ---------------------------------------------------------------------

_NODE_ATTRIBUTES = frozenset({"type", "children", "parent"})
_IMMUTABLE = (str, int, float, bool, type(None))
_STATIC_VALIDATORS = (
    "ActionCountValidator",
    "OverlappingPathsValidator",
    "UpdateHashRangeKeyValidator",
)


class _Tree:
    """What is known of one parsed update expression (a tree the parser cache holds):
    whether the plain copier can copy it, and the (attribute names, table keys) that
    passed the static validators."""

    __slots__ = ("copyable", "passed", "source")

    def __init__(self, source: Any, copyable: bool) -> None:
        self.source = source
        self.copyable = copyable
        self.passed: set[tuple[Any, ...]] = set()


# id(tree) -> what is known of it; holding the tree keeps its id from being reused
_TREES: dict[int, _Tree] = {}
_TREES_KEPT = 4096


def _nodes(node: Any, node_class: type) -> Iterator[Any]:
    yield node
    for child in node.children or ():
        if isinstance(child, node_class):
            yield from _nodes(child, node_class)


def _tree(source: Any, node_class: type) -> _Tree:
    known = _TREES.get(id(source))
    if known is not None and known.source is source:
        return known
    seen: set[int] = set()
    copyable = source.parent is None
    for node in _nodes(source, node_class):
        if id(node) in seen or not _NODE_ATTRIBUTES.issuperset(vars(node)):
            copyable = False  # shared nodes or other state: deepcopy's business
            break
        seen.add(id(node))
    if len(_TREES) >= _TREES_KEPT:
        _TREES.clear()
    known = _TREES[id(source)] = _Tree(source, copyable)
    return known


def _copy_tree(node: Any, parent: Any, node_class: type) -> Any:
    """What deepcopy makes of a tree whose nodes hold only a type name, children
    and a parent, and whose leaves' children are values."""
    new = object.__new__(type(node))
    state = dict(vars(node))
    children = state["children"]
    if children is not None:
        state["children"] = [
            _copy_tree(child, new, node_class)
            if isinstance(child, node_class)
            else child
            if type(child) in _IMMUTABLE
            else copy.deepcopy(child)
            for child in children
        ]
    state["parent"] = parent
    vars(new).update(state)
    return new


def _faster_updates() -> None:
    from moto.dynamodb.parsing import validators

    # moto types neither module (both start with `# type: ignore`)
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        DepthFirstTraverser,
        Node,
    )
    from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]
        UpdateExpressionParser,
    )

    _ORIGINALS["make"] = vars(UpdateExpressionParser)["make"]
    _ORIGINALS["traverse"] = vars(DepthFirstTraverser)["traverse"]
    _ORIGINALS["validator_init"] = vars(validators.Validator)["__init__"]
    _ORIGINALS["validate"] = vars(validators.UpdateExpressionValidator).get("validate")
    parse = _ORIGINALS["make"].__func__
    parsed = functools.lru_cache(maxsize=1024)(functools.partial(parse, UpdateExpressionParser))
    static = tuple(getattr(validators, name) for name in _STATIC_VALIDATORS)
    is_node: dict[type, bool] = {}
    # (the node classes a traverser handles, a node's class) -> the first that it is
    first_match: dict[tuple[tuple[type, ...], type], type | None] = {}

    def make(cls: Any, expression: str) -> Any:
        return parsed(expression) if cls is UpdateExpressionParser else parse(cls, expression)

    def traverse(self: Any, root: Any) -> Any:
        # moto's traverse_node_recursively, its node types looked up once per class
        processors = self._processing_map()
        handled = tuple(processors)  # the same classes for every traverser of a class
        pre = self.pre_processing_of_child

        def processor(node_class: type) -> Any:
            try:
                match = first_match[handled, node_class]
            except KeyError:
                match = next((k for k in handled if issubclass(node_class, k)), None)
                first_match[handled, node_class] = match
            return None if match is None else processors[match]

        def walk(node: Any, child_id: int) -> Any:
            node_class = type(node)
            node_like = is_node.get(node_class)
            if node_like is None:
                node_like = is_node[node_class] = issubclass(node_class, Node)
            if not node_like:
                return node
            parent = node.parent
            if node.children is not None:
                for i, child in enumerate(node.children):
                    pre(node, i)
                    walk(child, i)
            process = processor(node_class)
            if process is not None:
                node = process(node)
                node.parent = parent
                if parent:
                    parent.children[child_id] = node
            return node

        return walk(root, -1)

    def validator_init(
        self: Any,
        expression: Any,
        expression_attribute_names: Any,
        expression_attribute_values: Any,
        item: Any,
        table: Any,
    ) -> None:
        self.expression_attribute_names = expression_attribute_names
        self.expression_attribute_values = expression_attribute_values
        self.item = item
        self.table = table
        self.processors = self.get_ast_processors()
        known = _tree(expression, Node)
        self.parley_tree = known
        if known.copyable:
            self.node_to_validate = _copy_tree(expression, None, Node)
        else:
            self.node_to_validate = copy.deepcopy(expression)

    def validate(self: Any) -> Any:
        known: _Tree = self.parley_tree
        key: tuple[Any, ...] | None
        try:
            key = (
                tuple(sorted((self.expression_attribute_names or {}).items())),
                tuple(self.table.table_key_attrs),
            )
            skip = key in known.passed
        except TypeError:  # names that are not strings: moto's validators say so
            key, skip = None, False
        node = self.node_to_validate
        for processor in self.processors:
            if not (skip and isinstance(processor, static)):
                node = processor.traverse(node)
        if key is not None:
            known.passed.add(key)  # every validator passed, the static three among them
        return node

    UpdateExpressionParser.make = classmethod(make)
    DepthFirstTraverser.traverse = traverse
    validators.Validator.__init__ = validator_init  # type: ignore[method-assign]
    validators.UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]


def _restore_updates() -> None:
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.ast_nodes import (  # type: ignore[attr-defined]
        DepthFirstTraverser,
    )
    from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]
        UpdateExpressionParser,
    )

    UpdateExpressionParser.make = _ORIGINALS.pop("make")
    DepthFirstTraverser.traverse = _ORIGINALS.pop("traverse")
    validators.Validator.__init__ = _ORIGINALS.pop("validator_init")  # type: ignore[method-assign]
    validate = _ORIGINALS.pop("validate")
    if validate is None:
        del validators.UpdateExpressionValidator.validate
    else:
        validators.UpdateExpressionValidator.validate = validate  # type: ignore[method-assign]
    _TREES.clear()


# -- answers ------------------------------------------------------------------------

# (id(shape), id(parent shape), member name) -> (shape, parent, the names to try,
# whether none of them holds a dot: moto's `get_value` would follow a dotted name)
_NAMES_TO_TRY: dict[tuple[int, int, str], tuple[Any, Any, tuple[str, ...], bool]] = {}
_NAMES_KEPT = 16384
_ABSENT = object()


def _faster_answers() -> None:
    from moto.core import serialize

    original = _ORIGINALS["possible_keys"] = vars(serialize.XFormedAttributePicker)[
        "get_possible_keys"
    ]
    defaults = serialize.DEFAULT_ALIAS_PROVIDERS

    def get_possible_keys(self: Any, context: Any) -> Iterator[str]:
        # what the providers answer for a plain dict (no Meta, class name "dict")
        # depends on the shape, its parent and the key alone
        if type(context.obj) is not dict or self.alias_providers is not defaults:
            return original(self, context)  # type: ignore[no-any-return]
        shape = context.shape
        parent = getattr(shape, "parent", None)
        memo = (id(shape), id(parent), context.key)
        known = _NAMES_TO_TRY.get(memo)
        if known is None or known[0] is not shape or known[1] is not parent:
            if len(_NAMES_TO_TRY) >= _NAMES_KEPT:
                _NAMES_TO_TRY.clear()
            names = tuple(original(self, context))
            plain = not any("." in name for name in names)
            known = _NAMES_TO_TRY[memo] = (shape, parent, names, plain)
        return iter(known[2])

    serialize.XFormedAttributePicker.get_possible_keys = get_possible_keys  # type: ignore[method-assign,assignment]

    original_get_value = _ORIGINALS["get_value"] = vars(serialize.ResponseSerializer)["get_value"]
    picker_class = serialize.XFormedAttributePicker

    def get_value(self: Any, value: Any, key: str, shape: Any) -> Any:
        # moto's picker, for a plain dict whose names to try are known and hold no
        # dot, without the context it builds for every member: the first name the
        # dict holds wins, as in moto's picker, and no transformer applies (the
        # picker has none)
        picker = self._value_picker
        if (
            type(value) is dict
            and type(picker) is picker_class
            and picker.alias_providers is defaults
            and not picker.response_transformers
        ):
            parent = getattr(shape, "parent", None)
            known = _NAMES_TO_TRY.get((id(shape), id(parent), key))
            if known is not None and known[0] is shape and known[1] is parent and known[3]:
                for name in known[2]:
                    found = value.get(name, _ABSENT)
                    if found is not _ABSENT:
                        return found
                return None
        return original_get_value(self, value, key, shape)

    serialize.ResponseSerializer.get_value = get_value  # type: ignore[method-assign]


def _restore_answers() -> None:
    from moto.core import serialize

    serialize.XFormedAttributePicker.get_possible_keys = _ORIGINALS.pop("possible_keys")  # type: ignore[method-assign]
    serialize.ResponseSerializer.get_value = _ORIGINALS.pop("get_value")  # type: ignore[method-assign]
    _NAMES_TO_TRY.clear()


# -- condition and filter expressions ------------------------------------------------

# (expression, its attribute names) -> (moto's finished tree, with the values of its
# first use; the names it reads; the value placeholders it reads)
_CONDITIONS: dict[tuple[str, tuple[Any, ...]], tuple[Any, tuple[str, ...], tuple[str, ...]]] = {}
_CONDITIONS_KEPT = 4096


def _faster_conditions() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    original = _ORIGINALS["parse_condition"] = vars(ConditionExpressionParser)["parse"]
    value_kind = ConditionExpressionParser.Kind.EXPRESSION_ATTRIBUTE_VALUE

    def with_values(parser: Any, node: Any) -> Any:
        # the tree with this request's values, looked up as moto's lexer looks them up
        if node.kind == value_kind:
            return node._replace(value=parser._lookup_expression_attribute_value(node.text))
        if not node.children:
            return node
        return node._replace(children=[with_values(parser, child) for child in node.children])

    def first_parse(parser: Any) -> Any:
        # moto's own parse; the tree it finishes is the one its first
        # _make_op_condition call is given (the later calls are for the subtrees)
        finished: list[Any] = []
        make = parser._make_op_condition

        def capture(node: Any) -> Any:
            if not finished:
                finished.append(node)
            return make(node)

        parser._make_op_condition = capture
        try:
            op = original(parser)
        finally:
            del parser._make_op_condition
        return op, finished[0] if finished else None

    def parse(self: Any) -> Any:
        expression, names = self.condition_expression, self.expression_attribute_names
        if not expression or type(expression) is not str:
            return original(self)
        try:
            key = (expression, tuple(names.items()) if names else ())
            known = _CONDITIONS.get(key)
        except (AttributeError, TypeError):  # names that are not a dict of strings
            return original(self)
        if known is None:
            op, tree = first_parse(self)
            if tree is not None:
                if len(_CONDITIONS) >= _CONDITIONS_KEPT:
                    _CONDITIONS.clear()
                literals = tuple(self._find_literals(tree))
                _CONDITIONS[key] = (tree, literals, tuple(self._find_expr_attr_values(tree)))
            return op
        tree, literals, placeholders = known
        tree = with_values(self, tree)
        self.expr_attr_names_found.extend(literals)
        self.expr_attr_values_found.extend(placeholders)
        return self._make_op_condition(tree)

    ConditionExpressionParser.parse = parse  # type: ignore[method-assign]


def _restore_conditions() -> None:
    from moto.dynamodb.comparisons import ConditionExpressionParser

    ConditionExpressionParser.parse = _ORIGINALS.pop("parse_condition")  # type: ignore[method-assign]
    _CONDITIONS.clear()
