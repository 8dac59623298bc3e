"""Pinnacle's text syntax: ``Key = value;``, blocks ``Key ={ ... };``, arrays and comments.

``parse()`` turns a file's text into a ``Node``: an ordered list of (key, value) pairs in which a
key may repeat (``Plan ={..}; Plan ={..};``). Values are ``str`` (quoted strings unquoted, bare
words and numbers kept as written, so an MRN keeps its leading zeros), ``Node`` for blocks, and
``list[str]`` for arrays (``Points[] ={ 1,2, 3,4 };``). Bare words come back as ``Bare`` (a
``str``), so ``dumps(parse(text))`` writes numbers, enums and ``\\XDR:0\\`` literals unquoted, as
Pinnacle wrote them. Dotted keys written with spaces (``DoseGrid .VoxelSize .X``) are joined
(``DoseGrid.VoxelSize.X``). ``dumps()`` writes the same syntax back.

``decode()`` never fails: UTF-8, then GB18030, then latin-1 (docs/contracts.md §1.1).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator, Mapping

Value = Any  # str | Node | list[str]


class Bare(str):
    """A value ``dumps()`` writes without quotes (numbers, enums, ``\\XDR:0\\`` literals)."""


class ParseError(ValueError):
    """The text is not valid Pinnacle syntax. ``line`` is 1-based."""

    def __init__(self, message: str, line: int):
        super().__init__(f"line {line}: {message}")
        self.line = line


class Node:
    """An ordered multi-map of a Pinnacle block."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[tuple[str, Value]] = ()):
        self.items: list[tuple[str, Value]] = list(items)

    def get(self, key: str, default: Value = None) -> Value:
        for k, v in self.items:
            if k == key:
                return v
        return default

    def get_all(self, key: str) -> list[Value]:
        return [v for k, v in self.items if k == key]

    def get_str(self, key: str, default: str = "") -> str:
        value = self.get(key)
        return value if isinstance(value, str) else default

    def get_int(self, key: str) -> int | None:
        value = self.get(key)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                return None
        return None

    def get_node(self, key: str) -> "Node":
        value = self.get(key)
        return value if isinstance(value, Node) else Node()

    def keys(self) -> list[str]:
        return [k for k, _ in self.items]

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _ in self.items)

    def __iter__(self) -> Iterator[tuple[str, Value]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and self.items == other.items

    def __repr__(self) -> str:
        return f"Node({self.items!r})"


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding it was read with: UTF-8, else GB18030, else latin-1."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>/\*.*?\*/ | //[^\n]*)
  | (?P<open_comment>/\*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<open_string>")
  | (?P<literal>\\[^\\\n]*\\)
  | (?P<open>=\s*\{)
  | (?P<close>\}\s*;?)
  | (?P<equals>=)
  | (?P<semi>;)
  | (?P<comma>,)
  | (?P<word>[^\s=;,"{}\\]+)
  | (?P<bad>.)
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(text: str) -> Iterator[tuple[str, str, int]]:
    line = 1
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or ""  # every alternative is a named group
        value = match.group()
        if kind == "open_comment":
            return  # an unterminated trailing comment: everything before it was read
        if kind == "open_string":
            raise ParseError("unterminated string (truncated file?)", line)
        if kind not in ("space", "comment"):
            yield kind, value, line
        line += value.count("\n")


def _unquote(token: str) -> str:
    body = token[1:-1]
    if "\\" in body:
        body = re.sub(r'\\(["\\])', r"\1", body)
    return body


def parse(text: str) -> Node:
    """Parse a whole file. Raises ``ParseError`` naming the line on malformed input.

    A file that ends inside a block names the outermost open block and the line it opened on
    (``line 44: file ends inside block 'PlanList' (truncated file?)``): that is the block a person
    looks for, whatever nested block the cut happened in.
    """
    tokens = list(_tokens(text))
    node, index = _parse_block(tokens, 0, top=True, outer=None, name="", depth=0)
    return node


# Real files nest a handful of blocks (Plan > Trial > BeamList > Beam > ...); a hostile or broken file could
# nest thousands and exhaust the recursion of the parser: refused with a ParseError naming the line.
MAX_DEPTH = 64


def _truncated(outer: tuple[str, int] | None, line: int, what: str) -> ParseError:
    if outer is None:
        return ParseError(f"file ends after {what} (truncated file?)", line)
    return ParseError(f"file ends inside block {outer[0]!r} (truncated file?)", outer[1])


def _parse_block(tokens: list[tuple[str, str, int]], i: int, *, top: bool, outer: tuple[str, int] | None,
                 name: str, depth: int):
    items: list[tuple[str, Value]] = []
    array: list[str] | None = None
    n = len(tokens)
    while True:
        if i >= n:
            if top:
                return Node(items), i
            raise _truncated(outer, tokens[-1][2], repr(name))
        kind, value, line = tokens[i]
        if kind == "close":
            if top:
                raise ParseError("'};' without an open block", line)
            return (array if array is not None else Node(items)), i + 1
        if kind in ("semi", "comma"):
            i += 1
            continue
        # A key is one or more words before '=' or '={'; anything else inside a block is an array item.
        j = i
        words: list[str] = []
        while j < n and tokens[j][0] == "word":
            words.append(tokens[j][1])
            j += 1
        if words and j >= n:
            raise _truncated(outer, tokens[-1][2], repr(" ".join(words)))
        if words and tokens[j][0] in ("equals", "open"):
            key = "".join(words)
            if tokens[j][0] == "open":
                if depth >= MAX_DEPTH:
                    raise ParseError(f"blocks nested more than {MAX_DEPTH} deep (at {key!r}): not a Pinnacle file",
                                     tokens[j][2])
                child_outer = outer or (key, tokens[j][2])
                child, i = _parse_block(tokens, j + 1, top=False, outer=child_outer, name=key, depth=depth + 1)
                items.append((key.removesuffix("[]") if isinstance(child, list) else key, child))
                continue
            j += 1
            if j >= n:
                raise _truncated(outer, line, f"'{key} ='")
            vkind, vtext, vline = tokens[j]
            if vkind == "string":
                items.append((key, _unquote(vtext)))
            elif vkind in ("word", "literal"):
                items.append((key, Bare(vtext)))
            elif vkind == "semi":
                items.append((key, ""))
                j -= 1
            else:
                raise ParseError(f"unexpected {vtext!r} after '{key} ='", vline)
            j += 1
            if j < n and tokens[j][0] == "semi":
                j += 1
            elif j < n and tokens[j][0] != "close":
                raise ParseError(f"missing ';' after '{key}'", tokens[j][2])
            i = j
            continue
        if top or kind not in ("word", "string", "literal"):
            raise ParseError(f"unexpected {value!r}", line)
        if items:
            raise ParseError(f"unexpected {value!r} in block {name!r}", line)
        array = array if array is not None else []
        array.append(_unquote(value) if kind == "string" else Bare(value))
        i += 1


def _format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Bare):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot write {type(value).__name__} as a Pinnacle value")


def _pairs(block: Node | Mapping[str, Value] | Iterable[tuple[str, Value]]) -> Iterable[tuple[str, Value]]:
    if isinstance(block, Node):
        return block.items
    if isinstance(block, Mapping):
        return block.items()
    return block


def dumps(block: Node | Mapping[str, Value] | Iterable[tuple[str, Value]], *, indent: int = 0,
          trailer: bool = True) -> str:
    """Write pairs in Pinnacle syntax: two-space indent, blocks as ``Key ={``, arrays as ``Key[] ={``."""
    lines: list[str] = []
    _dump_into(lines, block, indent)
    text = "\n".join(lines) + "\n"
    return text + "\n/* ~ */\n" if trailer and indent == 0 else text


def _dump_into(lines: list[str], block, depth: int) -> None:
    pad = "  " * depth
    for key, value in _pairs(block):
        if isinstance(value, (Node, Mapping)) or (isinstance(value, list) and value and isinstance(value[0], tuple)):
            lines.append(f"{pad}{key} ={{")
            _dump_into(lines, value, depth + 1)
            lines.append(f"{pad}}};")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}[] ={{")
            if value:
                lines.append(pad + "  " + ",".join(_format_value(v) for v in value) + ",")
            lines.append(f"{pad}}};")
        else:
            lines.append(f"{pad}{key} = {_format_value(value)};")
