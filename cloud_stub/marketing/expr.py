"""Tag expressions that target campaigns, e.g. `rfm == "重要挽留客户" and activity in ["沉默客户", "睡眠客户"]`.

Grammar (a safe subset of Python expressions, parsed with `ast` and evaluated by walking the tree —
never `eval`):
    expr   := expr and expr | expr or expr | not expr | ( expr ) | cmp
    cmp    := operand (== | != | in | not in | < | <= | > | >=) operand
    operand:= KIND | KIND.score | "string" | number | [ "a", "b", … ]
A KIND is a tag kind (rfm, activity, frequency, …) or a member field (tier, gender, site_id); it
stands for the tag's value (`KIND.score` for its score). A member without that tag has no value,
and every comparison with a missing value is false (so `not activity == "活跃客户"` does match it).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

from cloud_stub.errors import InvalidRequestError

MAX_EXPRESSION_LEN = 2000
MEMBER_FIELDS = ("tier", "gender", "site_id")
_CMP = {
    ast.Eq: lambda a, b: a == b, ast.NotEq: lambda a, b: a != b,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
    ast.Lt: lambda a, b: a < b, ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b, ast.GtE: lambda a, b: a >= b,
}


class TagExpression:
    """A parsed, validated tag expression; `matches(values, scores)` evaluates it for one member."""

    def __init__(self, source: str) -> None:
        if not source.strip():
            raise InvalidRequestError("expression is required, e.g. rfm == \"重要挽留客户\"")
        if len(source) > MAX_EXPRESSION_LEN:
            raise InvalidRequestError(f"expression is longer than {MAX_EXPRESSION_LEN} characters")
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except SyntaxError as err:
            raise InvalidRequestError(
                f"expression is not valid at column {err.offset}: {err.msg}; "
                "write e.g. rfm == \"重要挽留客户\" and activity in [\"沉默客户\"]"
            ) from err
        self.source = source
        self._tree = tree.body
        self.kinds: set[str] = set()
        self._check(self._tree)

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, ast.BoolOp) and isinstance(node.op, (ast.And, ast.Or)):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            self._check(node.operand)
        elif isinstance(node, ast.Compare):
            if not all(type(op) in _CMP for op in node.ops):
                raise InvalidRequestError("expression may only compare with == != in not-in < <= > >=")
            for operand in (node.left, *node.comparators):
                self._check_operand(operand)
        else:
            raise InvalidRequestError(
                f"expression part {ast.unparse(node)!r} is not a comparison; combine comparisons with and/or/not"
            )

    def _check_operand(self, node: ast.AST) -> None:
        if isinstance(node, ast.Name):
            self.kinds.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.attr == "score":
            self.kinds.add(node.value.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)) and not isinstance(
            node.value, bool
        ):
            pass
        elif isinstance(node, (ast.List, ast.Tuple)):
            for elt in node.elts:
                if not (isinstance(elt, ast.Constant) and isinstance(elt.value, (str, int, float))):
                    raise InvalidRequestError("a list in an expression may only hold strings or numbers")
        else:
            raise InvalidRequestError(
                f"{ast.unparse(node)!r} is not allowed in an expression: use tag kinds, KIND.score, "
                "strings, numbers and lists"
            )

    def matches(self, values: Mapping[str, Any], scores: Mapping[str, float]) -> bool:
        """True when the member with these tag values (and member fields) and scores is targeted."""
        return bool(self._eval(self._tree, values, scores))

    def _eval(self, node: ast.AST, values: Mapping[str, Any], scores: Mapping[str, float]) -> bool:
        if isinstance(node, ast.BoolOp):
            results = (self._eval(v, values, scores) for v in node.values)
            return all(results) if isinstance(node.op, ast.And) else any(results)
        if isinstance(node, ast.UnaryOp):
            return not self._eval(node.operand, values, scores)
        assert isinstance(node, ast.Compare)
        left = self._operand(node.left, values, scores)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self._operand(right_node, values, scores)
            if left is None or right is None:
                return False
            try:
                if not _CMP[type(op)](left, right):
                    return False
            except TypeError:
                return False  # e.g. a string tag compared with a number
            left = right
        return True

    @staticmethod
    def _operand(node: ast.AST, values: Mapping[str, Any], scores: Mapping[str, float]) -> Any:
        if isinstance(node, ast.Name):
            return values.get(node.id)
        if isinstance(node, ast.Attribute):
            return scores.get(node.value.id)  # type: ignore[attr-defined]
        if isinstance(node, ast.Constant):
            return node.value
        return [elt.value for elt in node.elts]  # type: ignore[attr-defined]
