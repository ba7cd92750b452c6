"""The shortest bytes that finish a partly generated JSON document.

`Closer` reads the bytes a constrained model emits (compact JSON as llguidance
allows it for a plan from `shared.schema_plan`) and can say at any point which
bytes complete them into a document that validates. It is incremental (one stack
of frames, fed as tokens arrive) because the budget guard asks after every token.

The closing is canonical: if it is `c` after bytes `p`, it is `c[k:]` after
`p + c[:k]`. The guard relies on that, so forcing a closing never costs more later.
"""

from __future__ import annotations

import copy
from decimal import Decimal

from shared.schema_plan import (
    PAD,
    AnyNode,
    ArrayNode,
    LiteralNode,
    Node,
    NumberNode,
    ObjectNode,
    OpenObjectNode,
    StringNode,
)

# JSON escapes llguidance emits: the short ones, and \u00XX for control characters only.
_SHORT_ESCAPES = frozenset(b'"\\bfnrt')
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = b"0123456789"
# The shortest JSON value: what an open object's last key gets when the document must close.
ANY_MINIMAL = b"0"


class ClosingError(ValueError):
    """The bytes are not a prefix the plan's grammar allows."""


class Frame:
    """One open value. `feed` returns False when the byte belongs to the parent (the value ended)."""

    done = False

    def feed(self, byte: int, closer: Closer) -> bool:
        raise NotImplementedError

    def closing(self) -> bytes:
        """Bytes that finish this value, assuming any child above it has been finished."""
        raise NotImplementedError


def frame_for(node: Node) -> Frame:
    """A fresh frame for a value of `node` whose first byte has not arrived yet."""
    return _FRAMES[type(node)](node)


def _utf8_needs(lead: int) -> int:
    """Continuation bytes a UTF-8 lead byte announces (0 for ASCII)."""
    if lead < 0x80:
        return 0
    if 0xC2 <= lead <= 0xDF:
        return 1
    if 0xE0 <= lead <= 0xEF:
        return 2
    if 0xF0 <= lead <= 0xF4:
        return 3
    raise ClosingError(f"byte {lead:#x} cannot start a UTF-8 character")


def _continuation_range(lead: int, index: int) -> tuple[int, int]:
    """Allowed values of continuation byte `index` (0-based) after `lead`: no overlongs, surrogates, > U+10FFFF."""
    if index == 0:
        special = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}
        return special.get(lead, (0x80, 0xBF))
    return 0x80, 0xBF


class StringFrame(Frame):
    def __init__(self, node: StringNode) -> None:
        self.node = node
        self.opened = False
        self.chars = 0
        self.escape: bytes | None = None  # bytes after a backslash, while an escape is open
        self.lead = 0  # UTF-8 lead byte of a character still open
        self.continuation: int = 0  # continuation bytes seen for it

    def feed(self, byte: int, closer: Closer) -> bool:
        if not self.opened:
            if byte != 0x22:
                raise ClosingError("expected a string")
            self.opened = True
        elif self.escape is not None:
            self._feed_escape(byte)
        elif self.lead:
            low, high = _continuation_range(self.lead, self.continuation)
            if not low <= byte <= high:
                raise ClosingError("broken UTF-8 sequence")
            self.continuation += 1
            if self.continuation == _utf8_needs(self.lead):
                self.lead, self.chars = 0, self.chars + 1
        elif byte == 0x22:
            if self.chars < self.node.min_length:
                raise ClosingError("string shorter than minLength")
            self.done = True
        elif byte == 0x5C:
            self.escape = b""
        elif byte < 0x20:
            raise ClosingError("raw control character in a string")
        elif _utf8_needs(byte):
            self.lead, self.continuation = byte, 0
        else:
            self.chars += 1
        return True

    def _feed_escape(self, byte: int) -> None:
        escape = (self.escape or b"") + bytes([byte])
        if escape[:1] == b"u":
            if len(escape) > 1 and byte not in _HEX:
                raise ClosingError("bad \\u escape")
            finished = len(escape) == 5
        elif byte in _SHORT_ESCAPES:
            finished = True
        else:
            raise ClosingError("bad escape")
        self.escape = None if finished else escape
        if finished:
            self.chars += 1

    def closing(self) -> bytes:
        if not self.opened:
            return self.node.minimal
        head = b""
        chars = self.chars
        if self.escape is not None:
            head, chars = self._escape_closing(self.escape), chars + 1
        elif self.lead:
            head = bytes(_continuation_range(self.lead, i)[0] for i in range(self.continuation, _utf8_needs(self.lead)))
            chars += 1
        return head + PAD * max(0, self.node.min_length - chars) + b'"'

    @staticmethod
    def _escape_closing(escape: bytes) -> bytes:
        """Finish an open escape: `\\` + `n`, or a \\u00XX that llguidance allows (control characters)."""
        if not escape:
            return b"n"
        digits = escape[1:]
        if len(digits) == 3 and digits[2:] == b"7":
            return b"f"  # \u007f, the only \u007X llguidance emits
        return b"000a"[len(digits) :]


class LiteralFrame(Frame):
    def __init__(self, node: LiteralNode) -> None:
        self.node = node
        self.seen = b""

    def feed(self, byte: int, closer: Closer) -> bool:
        grown = self.seen + bytes([byte])
        if any(choice.startswith(grown) for choice in self.node.choices):
            self.seen = grown
            return True
        if self.seen in self.node.choices:
            self.done = True
            return False
        raise ClosingError(f"{self.node.path}: not one of the allowed values")

    def closing(self) -> bytes:
        matching = [c for c in self.node.choices if c.startswith(self.seen)]  # choices are sorted shortest first
        return matching[0][len(self.seen) :]


class NumberFrame(Frame):
    def __init__(self, node: NumberNode) -> None:
        self.node = node
        self.text = b""

    def feed(self, byte: int, closer: Closer) -> bool:
        text = self.text
        last = text[-1:]
        if byte in _DIGITS:
            if text in (b"0", b"-0"):
                return self._end()
        elif byte == 0x2D:  # '-'
            if text and last not in b"eE":
                return self._end()
        elif byte == 0x2E:  # '.'
            if not text or last not in _DIGITS or b"." in text or b"e" in text.lower():
                return self._end()
        elif byte in b"eE":
            if not text or last not in _DIGITS or b"e" in text.lower():
                return self._end()
        elif byte == 0x2B:  # '+'
            if not text or last not in b"eE":
                return self._end()
        else:
            return self._end()
        self.text = text + bytes([byte])
        return True

    def _end(self) -> bool:
        if self.closing():
            raise ClosingError(f"{self.node.path}: unfinished number")
        self.done = True
        return False

    def closing(self) -> bytes:
        text, node = self.text, self.node
        if not text:
            return node.minimal
        bounded = node.low is not None or node.high is not None
        last = text[-1:]
        if last in b"eE+" or (last == b"-" and text != b"-"):
            return b"0"  # an exponent needs a digit (only unbounded numbers have one)
        if b"." in text:
            if bounded:
                return self._fraction_closing()
            return b"" if last in _DIGITS else b"0"
        negative = text.startswith(b"-")
        digits = text[1:] if negative else text
        if digits == b"0":
            # llguidance never lets a bounded number end at -0: it wants a non-zero fraction.
            return b".1" if negative and bounded and not node.integer else b""
        if digits and not bounded:
            return b""
        return _integer_completion(negative, digits, node.low, node.high)

    def _fraction_closing(self) -> bytes:
        """Bounded numbers (no exponent there): the first of '', '0'..'9' that lands in range, not at -0."""
        for tail in (b"", *(bytes([digit]) for digit in _DIGITS)):
            text = self.text + tail
            if text.endswith(b"."):
                continue
            value = Decimal(text.decode())
            in_range = (self.node.low is None or value >= self.node.low) and (
                self.node.high is None or value <= self.node.high
            )
            if in_range and not (text.startswith(b"-") and value == 0):
                return tail
        raise ClosingError(f"{self.node.path}: no number in range continues {self.text!r}")


def _integer_completion(negative: bool, digits: bytes, low: int | None, high: int | None) -> bytes:
    """Fewest digits that make `[-]digits...` a whole number in [low, high]; the one nearest zero."""
    prefix = int(digits) if digits else 0
    for extra in range(0, 40):
        if extra == 0 and not digits:
            continue
        span = 10**extra
        lowest = prefix * span if digits else max(1, span // 10)
        highest = prefix * span + span - 1
        values = (-highest, -lowest) if negative else (lowest, highest)
        start = max(values[0], low) if low is not None else values[0]
        end = min(values[1], high) if high is not None else values[1]
        if start <= end:
            best = end if negative else start
            return str(abs(best)).encode()[len(digits) :]
    raise ClosingError("no whole number in range continues these digits")


class ArrayFrame(Frame):
    def __init__(self, node: ArrayNode) -> None:
        self.node = node
        self.opened = False
        self.count = 0
        self.expect_item = False  # after ',' an item must follow

    def feed(self, byte: int, closer: Closer) -> bool:
        if not self.opened:
            if byte != 0x5B:
                raise ClosingError("expected an array")
            self.opened = True
        elif byte == 0x5D and not self.expect_item and self.count >= self.node.min_items:
            self.done = True
        elif byte == 0x2C and self.count and not self.expect_item:
            self.expect_item = True
        elif self.expect_item or self.count == 0:
            if self.node.max_items is not None and self.count >= self.node.max_items:
                raise ClosingError("too many items")
            self.count += 1
            self.expect_item = False
            closer.push(frame_for(self.node.items), byte)
        else:
            raise ClosingError("expected ',' or ']'")
        return True

    def closing(self) -> bytes:
        if not self.opened:
            return self.node.minimal
        item = self.node.items.minimal
        missing = max(0, self.node.min_items - self.count)
        if self.expect_item:
            return item + (b"," + item) * max(0, missing - 1) + b"]"
        if self.count == 0:
            return b",".join([item] * missing) + b"]"
        return (b"," + item) * missing + b"]"


class ObjectFrame(Frame):
    def __init__(self, node: ObjectNode) -> None:
        self.node = node
        self.opened = False
        self.next_index = 0  # properties before this one are emitted or skipped
        self.key: bytes | None = None  # key bytes while a key is being written
        self.colon_for: int | None = None  # property whose ':' is expected next
        self.expect_key = False  # after ','

    def _candidates(self) -> list[int]:
        """Properties that may come next: up to and including the first required one."""
        found = []
        for index in range(self.next_index, len(self.node.properties)):
            found.append(index)
            if self.node.properties[index].required:
                break
        return found

    def _tail(self, after: int) -> bytes:
        """`,"key":minimal` for every required property after index `after`, then `}`."""
        rest = self.node.properties[after + 1 :]
        return b"".join(b"," + p.key + b":" + p.schema.minimal for p in rest if p.required) + b"}"

    def feed(self, byte: int, closer: Closer) -> bool:
        if not self.opened:
            if byte != 0x7B:
                raise ClosingError("expected an object")
            self.opened = True
        elif self.key is not None:
            self._feed_key(byte)
        elif self.colon_for is not None:
            if byte != 0x3A:
                raise ClosingError("expected ':'")
            closer.push(frame_for(self.node.properties[self.colon_for].schema))
            self.next_index, self.colon_for = self.colon_for + 1, None
        elif byte == 0x7D and not self.expect_key and not self._required_left():
            self.done = True
        elif byte == 0x2C and self.next_index and not self.expect_key:
            self.expect_key = True
        elif byte == 0x22 and (self.expect_key or self.next_index == 0):
            self.key, self.expect_key = b'"', False
        else:
            raise ClosingError("unexpected byte in an object")
        return True

    def _required_left(self) -> bool:
        return any(p.required for p in self.node.properties[self.next_index :])

    def _feed_key(self, byte: int) -> None:
        key = (self.key or b"") + bytes([byte])
        matches = [i for i in self._candidates() if self.node.properties[i].key.startswith(key)]
        if not matches:
            raise ClosingError("not an allowed property name here")
        whole = [i for i in matches if self.node.properties[i].key == key]
        if whole:
            self.key, self.colon_for = None, whole[0]
        else:
            self.key = key

    def _option(self, index: int, typed: bytes) -> bytes:
        prop = self.node.properties[index]
        return prop.key[len(typed) :] + b":" + prop.schema.minimal + self._tail(index)

    def closing(self) -> bytes:
        if not self.opened:
            return self.node.minimal
        if self.colon_for is not None:
            prop = self.node.properties[self.colon_for]
            return b":" + prop.schema.minimal + self._tail(self.colon_for)
        if self.key is not None or self.expect_key:  # a property must follow: the cheapest that fits what is typed
            typed = self.key or b""
            fitting = [i for i in self._candidates() if self.node.properties[i].key.startswith(typed)]
            return min((self._option(i, typed) for i in fitting), key=lambda b: (len(b), b))
        tail = self._tail(self.next_index - 1)
        if self.next_index == 0 and tail != b"}":
            return tail[1:]  # no ',' before the first property
        return tail


class AnyFrame(Frame):
    """A value of any type: its first byte says which, and the frame for that kind takes its place."""

    def __init__(self, node: AnyNode) -> None:
        self.node = node

    def feed(self, byte: int, closer: Closer) -> bool:
        path = self.node.path
        if byte == 0x22:
            kind: Node = StringNode(path, b'""', 0, None)
        elif byte == 0x2D or byte in _DIGITS:
            kind = NumberNode(path, b"0", False, None, None)
        elif byte in b"tfn":
            kind = LiteralNode(path, b"null", (b"null", b"true", b"false"))
        elif byte == 0x5B:
            kind = ArrayNode(path, b"[]", self.node, 0, None)
        elif byte == 0x7B:
            kind = OpenObjectNode(path, b"{}")
        else:
            raise ClosingError(f"{path}: no JSON value starts with byte {byte:#x}")
        return closer.replace_top(frame_for(kind), byte)

    def closing(self) -> bytes:
        return self.node.minimal


class OpenObjectFrame(Frame):
    """`{`, then `"key":value` pairs of any keys and values separated by `,`, then `}`."""

    def __init__(self, node: OpenObjectNode) -> None:
        self.node = node
        self.state = "unopened"  # then "first" (after `{`), "colon" (a key written), "value", "key" (after `,`)

    def feed(self, byte: int, closer: Closer) -> bool:
        state = self.state
        if state == "unopened" and byte == 0x7B:
            self.state = "first"
        elif state in ("first", "value") and byte == 0x7D:
            self.done = True
        elif state in ("first", "key") and byte == 0x22:
            self.state = "colon"
            closer.push(frame_for(StringNode(self.node.path, b'""', 0, None)), byte)
        elif state == "colon" and byte == 0x3A:
            self.state = "value"
            closer.push(frame_for(AnyNode(self.node.path, ANY_MINIMAL)))
        elif state == "value" and byte == 0x2C:
            self.state = "key"
        else:
            raise ClosingError(f"{self.node.path}: unexpected byte {byte:#x} in an object")
        return True

    def closing(self) -> bytes:
        tails = {"unopened": b"{}", "first": b"}", "colon": b":" + ANY_MINIMAL + b"}", "value": b"}"}
        return tails.get(self.state, b'"":' + ANY_MINIMAL + b"}")


_FRAMES: dict[type[Node], type[Frame]] = {
    StringNode: StringFrame,
    LiteralNode: LiteralFrame,
    NumberNode: NumberFrame,
    ArrayNode: ArrayFrame,
    ObjectNode: ObjectFrame,
    OpenObjectNode: OpenObjectFrame,
    AnyNode: AnyFrame,
}


class Closer:
    """Reads a document byte by byte; `closing()` is what finishes it now."""

    def __init__(self, plan: Node) -> None:
        self.stack: list[Frame] = [frame_for(plan)]

    def push(self, frame: Frame, first_byte: int | None = None) -> None:
        """Open a child value (called by frames); `first_byte`, if given, is its first byte."""
        self.stack.append(frame)
        if first_byte is not None:
            self._feed_top(first_byte)

    def replace_top(self, frame: Frame, byte: int) -> bool:
        """Put `frame` in place of the top frame (called by it) and feed it `byte`; returns whether it took it."""
        self.stack[-1] = frame
        return frame.feed(byte, self)

    def _feed_top(self, byte: int) -> None:
        while True:
            if not self.stack:
                raise ClosingError("bytes after the end of the document")
            top = self.stack[-1]
            taken = top.feed(byte, self)
            if top.done:
                self.stack.pop()
            if taken:
                return

    def feed(self, data: bytes) -> None:
        """Take bytes the model emitted; raises `ClosingError` if the grammar could not have emitted them."""
        for byte in data:
            self._feed_top(byte)

    def closing(self) -> bytes:
        """The shortest bytes that make what was fed a complete, valid document."""
        return b"".join(frame.closing() for frame in reversed(self.stack))

    def copy(self) -> Closer:
        """An independent copy, to try bytes without committing them."""
        twin = Closer.__new__(Closer)
        twin.stack = [copy.copy(frame) for frame in self.stack]
        return twin

    @property
    def complete(self) -> bool:
        """Whether what was fed is already a valid document."""
        return not self.closing()


def closing_bytes(plan: Node, prefix: bytes) -> bytes:
    """One-shot form of `Closer`: the bytes that finish `prefix`."""
    closer = Closer(plan)
    closer.feed(prefix)
    return closer.closing()
