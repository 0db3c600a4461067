"""Reading a device file's YAML safely, however hostile the file.

PyYAML's ``safe_load`` constructs no arbitrary objects, but it still has no bound on what a
small file can cost: aliases that expand a few lines into billions of values (every
message quoting such a value then takes for ever), nesting deep enough to exhaust the
stack (RecursionError), and constructors that raise other errors than ``YAMLError`` for
bad tagged scalars, integers beyond 4300 digits or impossible dates. :func:`load_yaml`
bounds each and turns every failure into a :class:`YamlProblem`:

- the file is read up to :data:`MAX_FILE_SIZE` bytes (a larger one is refused);
- collections may nest :data:`MAX_DEPTH` levels deep;
- the document, with every alias counted as what it stands for, may hold
  :data:`MAX_VALUES` values.
"""

from __future__ import annotations

import os
from typing import Any

import yaml
from yaml._yaml import CParser
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

#: a device file of ten thousand points is about 1 MB, and reads in about a second
MAX_FILE_SIZE = 2 * 1024 * 1024
MAX_DEPTH = 50
MAX_VALUES = 250_000


class YamlProblem(Exception):
    """The text is not YAML the bridge will read; the message says why (and where)."""


class _BoundedComposer(Composer):
    """PyYAML's composer, refusing nesting deeper than MAX_DEPTH and more than MAX_VALUES
    nodes as it goes (aliases are counted by :func:`_check_size` afterwards)."""

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH or self._nodes > MAX_VALUES:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                what = (
                    f"nested deeper than {MAX_DEPTH} levels"
                    if self._depth > MAX_DEPTH
                    else (f"more than {MAX_VALUES} values")
                )
                raise ComposerError(None, None, what, mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Loader(_BoundedComposer, CParser, SafeConstructor, Resolver):
    """libyaml's parser (four times as fast as PyYAML's own), our composer, the safe
    constructor."""

    def __init__(self, stream: str) -> None:
        CParser.__init__(self, stream)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        _BoundedComposer.__init__(self)


def read_text(path: str | os.PathLike[str]) -> str:
    """The file's text, read up to MAX_FILE_SIZE; OSError, UnicodeDecodeError or YamlProblem."""
    with open(path, "rb") as file:
        data = file.read(MAX_FILE_SIZE + 1)
    if len(data) > MAX_FILE_SIZE:
        raise YamlProblem(f"is larger than {MAX_FILE_SIZE // (1024 * 1024)} MiB: not a device file")
    return data.decode("utf-8")


def compose(text: str) -> yaml.Node | None:
    """The YAML node tree of ``text``, bounded in depth and expanded size."""
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # a character YAML does not allow
        raise YamlProblem(f"not valid YAML: {shorten(str(exc).splitlines()[0])}") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_size(node)
        return node
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_where(exc) + f"not valid YAML: {exc.problem}") from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise YamlProblem(f"not valid YAML: {shorten(str(exc))}") from None
    finally:
        loader.dispose()


def load_yaml(text: str) -> Any:
    """The document in ``text`` as Python data; YamlProblem for anything unusable."""
    node = compose(text)
    if node is None:
        return None
    loader = _Loader("")
    try:
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(_where(exc) + f"not valid YAML: {shorten(str(exc.problem))}") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # a bad tagged scalar, an impossible date, an integer of more than 4300 digits
        raise YamlProblem(f"not valid YAML: {type(exc).__name__}: {shorten(str(exc))}") from None
    finally:
        loader.dispose()


def _check_size(root: yaml.Node) -> None:
    """YamlProblem if ``root`` stands for more than MAX_VALUES values, aliases expanded."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        sizes[id(node)] = MAX_VALUES + 1  # a node that contains itself is over any limit
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(item) for item in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(key) + size(value) for key, value in node.value)
        if total > MAX_VALUES:
            raise YamlProblem(
                f"line {node.start_mark.line + 1}: holds more than {MAX_VALUES} values "
                "(an alias counted as what it stands for): not a device file"
            )
        sizes[id(node)] = total
        return total

    size(root)


def _where(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


def shorten(text: str, most: int = 200) -> str:
    """The first line of ``text``, cut to ``most`` characters."""
    text = text.splitlines()[0] if text else text
    return text if len(text) <= most else text[: most - 1] + "…"
