"""Derivable tasks: named decisions computed from trained heads by a small, safe rule language.

A rule is parsed by a recursive-descent parser over its own tokens — never ``eval`` — into a tree that is
type-checked against the heads (names, class names, types) when the recipe is loaded, and evaluated on arrays
of head outputs (one value per image). Grammar::

    rule    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := value (("==" | "!=" | "<" | "<=" | ">" | ">=") value)?
    value   := NUMBER | STRING | "true" | "false" | NAME | NAME "(" args ")" | "(" rule ")"

Names and functions:

- ``head`` — a classification head: its predicted class, compared with a class name (``==``, ``!=``);
- ``p(head)`` — probability of the predicted class; ``p(head, "class")`` — probability of that class;
- ``area(head)`` — a segmentation head: fraction of the image predicted as foreground (any class);
  ``area(head, "class")`` — of that class;
- another ``derive`` entry's name — its decision (true / false); decisions are evaluated after those they use,
  whatever their order in the recipe (a cycle is refused).

Example (the UMS-Rep Doppler recommendation)::

    measure: quality == "good" and flow == "TR" and p(flow) >= 0.8
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

CMP = ("==", "!=", "<=", ">=", "<", ">")
KEYWORDS = ("and", "or", "not", "true", "false")
FUNCTIONS = ("p", "area")

_TOKEN = re.compile(r"""\s*(?:(?P<num>\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
                         |(?P<str>"[^"\\]*"|'[^'\\]*')
                         |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
                         |(?P<op>==|!=|<=|>=|<|>|\(|\)|,))""", re.VERBOSE)


class RuleError(ValueError):
    """A rule that does not parse or does not fit the heads; the message says where and why."""


# ------------------------------------------------------------------------------------------------ tree
@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Str:
    value: str


@dataclass(frozen=True)
class Bool:
    value: bool


@dataclass(frozen=True)
class Name:            # a head's predicted class, or another decision
    name: str


@dataclass(frozen=True)
class Call:            # p(head[, "class"]) / area(head[, "class"])
    fn: str
    head: str
    cls: Optional[str]


@dataclass(frozen=True)
class Compare:
    op: str
    left: object
    right: object


@dataclass(frozen=True)
class BoolOp:
    op: str            # "and" | "or" | "not"
    args: Tuple[object, ...]


Node = Union[Num, Str, Bool, Name, Call, Compare, BoolOp]


# ----------------------------------------------------------------------------------------------- parse
def _tokens(text: str) -> List[Tuple[str, str, int]]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            col = len(text) - len(text[pos:].lstrip()) + 1
            raise RuleError(f"unexpected character {bad!r} at column {col}")
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0
        if not self.toks:
            raise RuleError("empty rule")

    def peek(self, value=None):
        if self.i >= len(self.toks):
            return None
        t = self.toks[self.i]
        return t if value is None or t[1] == value else None

    def take(self, value=None, what=None):
        t = self.peek()
        if t is None:
            raise RuleError(f"rule ends early; expected {what or repr(value)}")
        if value is not None and t[1] != value:
            raise RuleError(f"expected {what or repr(value)} at column {t[2]}, found {t[1]!r}")
        self.i += 1
        return t

    def parse(self) -> Node:
        node = self.or_()
        t = self.peek()
        if t is not None:
            raise RuleError(f"unexpected {t[1]!r} at column {t[2]}")
        return node

    def or_(self):
        args = [self.and_()]
        while self.peek("or"):
            self.take()
            args.append(self.and_())
        return args[0] if len(args) == 1 else BoolOp("or", tuple(args))

    def and_(self):
        args = [self.not_()]
        while self.peek("and"):
            self.take()
            args.append(self.not_())
        return args[0] if len(args) == 1 else BoolOp("and", tuple(args))

    def not_(self):
        if self.peek("not"):
            self.take()
            return BoolOp("not", (self.not_(),))
        return self.compare()

    def compare(self):
        left = self.value()
        t = self.peek()
        if t is not None and t[0] == "op" and t[1] in CMP:
            self.take()
            return Compare(t[1], left, self.value())
        return left

    def value(self):
        t = self.take(what="a value")
        kind, text, col = t
        if kind == "num":
            return Num(float(text))
        if kind == "str":
            return Str(text[1:-1])
        if kind == "op" and text == "(":
            node = self.or_()
            self.take(")")
            return node
        if kind == "name":
            if text in ("true", "false"):
                return Bool(text == "true")
            if text in ("and", "or", "not"):
                raise RuleError(f"unexpected {text!r} at column {col}")
            if self.peek("("):
                if text not in FUNCTIONS:
                    raise RuleError(f"unknown function {text!r} at column {col}; functions are p() and area()")
                self.take("(")
                head = self.take(what="a head name")
                if head[0] != "name" or head[1] in KEYWORDS:
                    raise RuleError(f"{text}() needs a head name at column {head[2]}, found {head[1]!r}")
                cls = None
                if self.peek(","):
                    self.take(",")
                    c = self.take(what="a quoted class name")
                    if c[0] != "str":
                        raise RuleError(f"{text}(): the class must be a quoted name at column {c[2]}")
                    cls = c[1][1:-1]
                self.take(")")
                return Call(text, head[1], cls)
            return Name(text)
        raise RuleError(f"unexpected {text!r} at column {col}")


def parse_rule(text: str) -> Node:
    return _Parser(text).parse()


# ------------------------------------------------------------------------------------------------ check
def check_rule(node: Node, heads: Dict[str, Tuple[str, List[str]]], decisions: List[str]) -> str:
    """Type-check ``node``; ``heads``: name -> (task type, classes); ``decisions``: the decisions already available.
    Returns the node's type (``bool``, ``num``, ``str``, ``class:<head>``)."""

    def head(name, want):
        if name not in heads:
            raise RuleError(f"unknown head {name!r}; heads are {sorted(heads)}"
                            + (f", decisions {decisions}" if decisions else ""))
        typ, classes = heads[name]
        if typ != want:
            raise RuleError(f"{name!r} is a {typ} head; this needs a {want} head")
        return classes

    def cls_in(name, cls, classes):
        if cls is not None and cls not in classes:
            raise RuleError(f"{cls!r} is not a class of {name!r} {classes}")

    def typ(n):
        if isinstance(n, Num):
            return "num"
        if isinstance(n, Str):
            return "str"
        if isinstance(n, Bool):
            return "bool"
        if isinstance(n, Name):
            if n.name in decisions:
                return "bool"
            head(n.name, "classification")
            return f"class:{n.name}"
        if isinstance(n, Call):
            classes = head(n.head, "classification" if n.fn == "p" else "segmentation")
            cls_in(n.head, n.cls, classes)
            return "num"
        if isinstance(n, BoolOp):
            for a in n.args:
                if typ(a) != "bool":
                    raise RuleError(f"'{n.op}' needs true/false operands (a comparison or a decision)")
            return "bool"
        if isinstance(n, Compare):
            lt, rt = typ(n.left), typ(n.right)
            if lt.startswith("class:") or rt.startswith("class:"):
                h, other = (n.left, n.right) if lt.startswith("class:") else (n.right, n.left)
                if not isinstance(other, Str) or n.op not in ("==", "!="):
                    raise RuleError(f"head {h.name!r} (its predicted class) can only be compared with == or != "
                                    f"to a quoted class name")
                cls_in(h.name, other.value, heads[h.name][1])
                return "bool"
            if lt == rt == "num":
                return "bool"
            if lt == rt == "bool" and n.op in ("==", "!="):
                return "bool"
            raise RuleError(f"cannot compare {lt} {n.op} {rt}")
        raise RuleError(f"unsupported expression {n!r}")  # pragma: no cover

    t = typ(node)
    if t != "bool":
        raise RuleError("a rule must be true or false (e.g. flow == \"TR\" and p(flow) >= 0.8)")
    return t


def heads_of(node: Node) -> set:
    """Names a rule reads: heads, and (as bare names) other decisions."""
    if isinstance(node, Call):
        return {node.head}
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Compare):
        return heads_of(node.left) | heads_of(node.right)
    if isinstance(node, BoolOp):
        return set().union(*(heads_of(a) for a in node.args))
    return set()


# ------------------------------------------------------------------------------------------------ eval
@dataclass
class HeadValues:
    """One head's outputs over n images: classification ``probs`` (n, C); segmentation ``fractions``
    (n, C + 1): per image, the fraction of pixels of each class (0 = background)."""

    classes: List[str]
    probs: Optional[np.ndarray] = None
    fractions: Optional[np.ndarray] = None


def evaluate_rule(node: Node, values: Dict[str, HeadValues], decisions: Dict[str, np.ndarray]) -> np.ndarray:
    """Evaluate a checked rule over n images -> bool array (n,)."""

    def ev(n):
        if isinstance(n, (Num, Str, Bool)):
            return n.value
        if isinstance(n, Name):
            if n.name in decisions:
                return decisions[n.name]
            h = values[n.name]
            return np.asarray(h.classes, dtype=object)[np.argmax(h.probs, axis=-1)]
        if isinstance(n, Call):
            h = values[n.head]
            if n.fn == "p":
                return h.probs.max(axis=-1) if n.cls is None else h.probs[:, h.classes.index(n.cls)]
            fr = h.fractions
            return 1.0 - fr[:, 0] if n.cls is None else fr[:, 1 + h.classes.index(n.cls)]
        if isinstance(n, BoolOp):
            args = [np.asarray(ev(a), bool) for a in n.args]
            if n.op == "not":
                return ~args[0]
            out = args[0]
            for a in args[1:]:
                out = (out & a) if n.op == "and" else (out | a)
            return out
        if isinstance(n, Compare):
            left, right = ev(n.left), ev(n.right)
            ops = {"==": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
                   ">=": np.greater_equal}
            return np.asarray(ops[n.op](left, right), bool)
        raise RuleError(f"unsupported expression {n!r}")  # pragma: no cover

    sizes = [len(h.probs if h.probs is not None else h.fractions) for h in values.values()]
    sizes += [len(d) for d in decisions.values()]
    return np.broadcast_to(np.asarray(ev(node), bool), (sizes[0] if sizes else 1,)).copy()


def decide(rules: Dict[str, Node], values: Dict[str, HeadValues]) -> Dict[str, np.ndarray]:
    """Every decision, in the given order (a rule may use the decisions before it)."""
    out: Dict[str, np.ndarray] = {}
    for name, node in rules.items():
        out[name] = evaluate_rule(node, values, out)
    return out
