"""A small, safe expression language for rule conditions, evaluated vectorized over a DataFrame.

Conditions look like Python/SQL expressions over the window's feature columns::

    cost_usd > 3 * baseline_7d and cost_usd - baseline_7d > 50
    action_name in ['updatePermissions', 'changeGrants'] and not is_service_principal

The text is parsed with :mod:`ast` and every node is checked against a whitelist (names,
numbers, strings, lists, comparisons, ``and``/``or``/``not``, ``+ - * / %``, a handful of
functions); anything else (attribute access, subscripts, lambdas, calls to other functions) is
rejected at load time. Nothing is ever passed to ``eval``: the checked tree is walked by
:func:`evaluate`, which turns each node into a pandas/numpy operation on whole columns.

Null semantics follow SQL: arithmetic with a null gives null, division by zero gives null (like
``try_divide``), a comparison with a null is unknown, ``and``/``or``/``not`` use three-valued
logic, and a condition that ends unknown does not fire: a rule never fires on missing data.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Bounds checked at load, so a rule file cannot make evaluation allocate or recurse without limit.
MAX_CONDITION_CHARS = 4000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_STRING_LITERAL = 1000
#: Number literals must be finite float64 values (arithmetic is done in float64).
MAX_NUMBER_LITERAL = 1e300

#: Literal names; anything else that looks like a name is a column reference.
_LITERALS = {"true": True, "false": False, "True": True, "False": False}

_BINOPS: dict[type, Callable] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
#: Functions a condition may call, by name and accepted argument counts.
FUNCTIONS: dict[str, tuple[int, int]] = {
    "abs": (1, 1),
    "min": (2, 8),
    "max": (2, 8),
    "coalesce": (2, 8),
    "lower": (1, 1),
    "contains": (2, 2),
}


class ExpressionError(ValueError):
    """A condition that is not valid in the rule language (message says what and where)."""


@dataclass(frozen=True)
class Expression:
    """A parsed, whitelisted condition.

    Attributes:
        text: the source text.
        tree: the checked :mod:`ast` expression.
        columns: column names the condition references, in first-use order.
    """

    text: str
    tree: ast.expr
    columns: tuple[str, ...]

    def evaluate(self, frame: pd.DataFrame) -> pd.Series:
        """Boolean Series (``False`` where data is missing) aligned with ``frame``."""
        return as_bool(evaluate(self.tree, frame), frame.index)


def parse(text: str) -> Expression:
    """Parse and check a condition; raises :class:`ExpressionError` with a short reason."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("condition is empty")
    if len(text) > MAX_CONDITION_CHARS:
        raise ExpressionError(f"condition is {len(text):,} characters long (at most {MAX_CONDITION_CHARS:,})")
    src = _sql_keywords(" ".join(text.split()))
    try:
        tree = ast.parse(src, mode="eval").body
    except SyntaxError as exc:
        col = f" at column {exc.offset}" if exc.offset else ""
        raise ExpressionError(f"cannot parse condition {_short(src)!r}{col}: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise ExpressionError(f"condition is nested too deeply (at most {MAX_DEPTH} levels)") from None
    nodes = sum(1 for _ in ast.walk(tree))
    if nodes > MAX_NODES:
        raise ExpressionError(f"condition has {nodes} terms and operators (at most {MAX_NODES}); split the rule")
    columns: list[str] = []
    _check(tree, columns)
    return Expression(src, tree, tuple(dict.fromkeys(columns)))


def _short(text: str, width: int = 120) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _sql_keywords(text: str) -> str:
    """Accept SQL's upper-case AND/OR/NOT/IN (people write both) outside string literals."""
    parts = re.split(r"""('[^']*'|"[^"]*")""", text)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"\b(AND|OR|NOT|IN)\b", lambda m: m.group(1).lower(), parts[i])
        parts[i] = re.sub(r"\b(TRUE|FALSE)\b", lambda m: m.group(1).lower(), parts[i])
    return "".join(parts)


def _check(node: ast.AST, columns: list[str], depth: int = 0) -> None:
    """Reject every node type outside the whitelist and beyond the bounds; collect column references."""
    if depth > MAX_DEPTH:
        raise ExpressionError(f"condition is nested too deeply (at most {MAX_DEPTH} levels); split the rule")
    deeper = depth + 1
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, columns, deeper)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
            raise ExpressionError(f"operator {type(node.op).__name__} is not allowed")
        _check(node.operand, columns, deeper)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise ExpressionError(f"operator {_op_text(node.op)} is not allowed (use + - * / %)")
        for side in (node.left, node.right):
            # String repetition and %-formatting ('x' * 2000000000) allocate without bound.
            if isinstance(side, ast.Constant) and isinstance(side.value, str):
                raise ExpressionError(f"arithmetic on the text {_short(side.value, 40)!r} is not allowed "
                                      "(+ - * / % work on numbers only)")
        _check(node.left, columns, deeper)
        _check(node.right, columns, deeper)
    elif isinstance(node, ast.Compare):
        _check(node.left, columns, deeper)
        for op, right in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                if not isinstance(right, ast.List | ast.Tuple | ast.Set):
                    raise ExpressionError("'in' needs a literal list, e.g. x in ['a', 'b']")
                for elt in right.elts:
                    if not isinstance(elt, ast.Constant) or not isinstance(elt.value, str | int | float):
                        raise ExpressionError("'in' lists may hold only numbers and strings")
                    _check(elt, columns, deeper)
            elif type(op) not in _CMPOPS:
                raise ExpressionError(f"comparison {type(op).__name__} is not allowed")
            else:
                _check(right, columns, deeper)
    elif isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ExpressionError(f"function {name!r} is not allowed (allowed: {', '.join(FUNCTIONS)})")
        lo, hi = FUNCTIONS[node.func.id]
        if node.keywords or not lo <= len(node.args) <= hi:
            raise ExpressionError(f"{node.func.id}() takes {lo}" + (f" to {hi}" if hi > lo else "")
                                  + " positional argument(s)")
        for a in node.args:
            _check(a, columns, deeper)
    elif isinstance(node, ast.Name):
        if node.id not in _LITERALS:
            columns.append(node.id)
    elif isinstance(node, ast.Constant):
        value = node.value
        if not isinstance(value, bool | int | float | str):
            raise ExpressionError(f"literal {_short(repr(value), 40)} is not allowed")
        if isinstance(value, str) and len(value) > MAX_STRING_LITERAL:
            raise ExpressionError(f"text literal of {len(value):,} characters (at most {MAX_STRING_LITERAL:,})")
        if isinstance(value, int | float) and not isinstance(value, bool) and not abs(value) <= MAX_NUMBER_LITERAL:
            raise ExpressionError(f"number literal {_short(repr(value), 40)} is out of range "
                                  f"(at most {MAX_NUMBER_LITERAL:g} in magnitude)")
    else:
        raise ExpressionError(f"{type(node).__name__} expressions are not allowed "
                              f"(near {ast.unparse(node)!r})")


def _op_text(op: ast.AST) -> str:
    return {ast.Pow: "**", ast.FloorDiv: "//", ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^",
            ast.LShift: "<<", ast.RShift: ">>", ast.MatMult: "@"}.get(type(op), type(op).__name__)


# ---------------------------------------------------------------------------------------------
# Vectorized evaluation


def truth(value: object, index: pd.Index) -> pd.Series:
    """Three-valued truth (nullable ``boolean``: True, False, NA) of a value, per row.

    Numbers are true when non-zero, strings when non-empty; nulls stay NA so ``not`` and ``or``
    follow SQL's logic (``NOT NULL`` is NULL, ``NULL OR TRUE`` is TRUE).
    """
    if isinstance(value, pd.Series):
        if str(value.dtype) == "boolean":
            return value
        if value.dtype == bool:
            return value.astype("boolean")
        num = _numeric(value)
        if isinstance(num, pd.Series) and num.dtype.kind in "fiu":
            return (num != 0).astype("boolean").mask(num.isna())
        return pd.Series([pd.NA if _is_null(x) else bool(x) for x in value], index=index, dtype="boolean")
    if _is_null(value):
        return pd.Series(pd.NA, index=index, dtype="boolean")
    return pd.Series(bool(value), index=index, dtype="boolean")


def _is_null(x: object) -> bool:
    return x is None or x is pd.NA or x is pd.NaT or (isinstance(x, float) and np.isnan(x))


def as_bool(value: object, index: pd.Index) -> pd.Series:
    """A plain boolean Series where null (unknown) counts as false: a rule never fires on it."""
    return truth(value, index).fillna(False).astype(bool)


def _numeric(value: object) -> object:
    """Columns of numbers stored as objects (Decimal, None) become float so NaN propagates.

    Integer columns become float64 too: int64 arithmetic wraps silently on overflow
    (``n * 9223372036854775807``), float64 saturates to inf, which compares correctly.
    """
    if isinstance(value, pd.Series) and value.dtype.kind in "iu":  # numpy and nullable Int64
        return pd.Series(value.to_numpy(dtype="float64", na_value=np.nan), index=value.index)
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, pd.Series) and value.dtype == object:
        conv = pd.to_numeric(value, errors="coerce")
        # Keep string columns as strings: only convert when nothing non-null was lost.
        if conv.notna().sum() == value.notna().sum():
            return conv.astype(float)
    if isinstance(value, pd.Series) and value.dtype == bool:
        return value.astype(float)
    return value


def _compare(op: Callable, left: object, right: object, index: pd.Index) -> pd.Series:
    left, right = _numeric(left), _numeric(right)
    with np.errstate(invalid="ignore"):
        try:
            result = op(left, right)
        except TypeError:
            # e.g. a string column compared with a number: no row can match.
            return pd.Series(False, index=index, dtype="boolean")
    # A comparison involving a null is unknown (SQL), not False: ``not (x > 5)`` must not fire.
    null = pd.Series(False, index=index)
    for side in (left, right):
        if isinstance(side, pd.Series):
            null |= side.isna()
        elif _is_null(side):
            null[:] = True
    return truth(result, index).fillna(False).mask(null)


def evaluate(node: ast.AST, frame: pd.DataFrame) -> object:
    """Value of a checked node over ``frame``: a Series (per row) or a scalar."""
    index = frame.index
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in _LITERALS:
            return _LITERALS[node.id]
        if node.id not in frame.columns:
            # The loader checks columns where the domain's columns are known; at run time a
            # missing column is missing data, so the rule simply cannot fire.
            return pd.Series(np.nan, index=index)
        return frame[node.id]
    if isinstance(node, ast.BoolOp):
        parts = [truth(evaluate(v, frame), index) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out
    if isinstance(node, ast.UnaryOp):
        val = evaluate(node.operand, frame)
        if isinstance(node.op, ast.Not):
            return ~truth(val, index)
        val = _numeric(val)
        return -val if isinstance(node.op, ast.USub) else val
    if isinstance(node, ast.BinOp):
        left = _numeric(evaluate(node.left, frame))
        right = _numeric(evaluate(node.right, frame))
        if not (_is_number(left) and _is_number(right)):
            # Text columns: repetition or %-formatting could allocate without bound; no number results.
            return pd.Series(np.nan, index=index)
        if isinstance(node.op, ast.Div | ast.Mod):
            # try_divide: a zero divisor gives null instead of inf or an error.
            right = (right.where(right != 0) if isinstance(right, pd.Series)
                     else (np.nan if right == 0 else right))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            try:
                return _BINOPS[type(node.op)](left, right)
            except TypeError:
                return pd.Series(np.nan, index=index)
    if isinstance(node, ast.Compare):
        left = evaluate(node.left, frame)
        result = pd.Series(True, index=index, dtype="boolean")
        for op, comp in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                values = [e.value for e in comp.elts]  # type: ignore[attr-defined]
                ser = left if isinstance(left, pd.Series) else pd.Series([left] * len(index), index=index)
                hit = ser.isin(values)
                if ser.dtype != object:
                    hit |= _numeric(ser).isin([v for v in values if not isinstance(v, str)])
                hit = hit.astype("boolean").mask(ser.isna())
                result &= hit if isinstance(op, ast.In) else ~hit
                right = comp
            else:
                right = evaluate(comp, frame)
                result &= _compare(_CMPOPS[type(op)], left, right, index)
            left = right
        return result
    if isinstance(node, ast.Call):
        name = node.func.id  # type: ignore[attr-defined]
        args = [evaluate(a, frame) for a in node.args]
        return _call(name, args, index)
    raise ExpressionError(f"cannot evaluate {type(node).__name__}")  # unreachable after _check


def _is_number(value: object) -> bool:
    if isinstance(value, pd.Series):
        return value.dtype.kind in "fiub" or str(value.dtype) in ("Float64", "Float32", "boolean")
    return isinstance(value, int | float | np.number) or _is_null(value)


def _series(value: object, index: pd.Index) -> pd.Series:
    return value if isinstance(value, pd.Series) else pd.Series([value] * len(index), index=index)


def _call(name: str, args: list[object], index: pd.Index) -> object:
    if name == "abs":
        return np.abs(_numeric(args[0]))
    if name in ("min", "max"):
        cols = pd.concat([_series(_numeric(a), index).astype(float) for a in args], axis=1)
        return cols.min(axis=1, skipna=False) if name == "min" else cols.max(axis=1, skipna=False)
    if name == "coalesce":
        out = _series(args[0], index)
        for a in args[1:]:
            out = out.where(out.notna(), _series(a, index))
        return out
    if name == "lower":
        return _series(args[0], index).astype("string").str.lower()
    if name == "contains":
        hay = _series(args[0], index).astype("string").str.lower()
        return hay.str.contains(str(args[1]).lower(), regex=False)
    raise ExpressionError(f"unknown function {name}")  # unreachable after _check
