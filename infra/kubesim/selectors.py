"""Label and field selectors, parsed from the query string the way the API server reads them."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infra.kubesim.api_errors import bad_request

_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_SET_REQUIREMENT = re.compile(
    rf"^\s*(?P<key>{_KEY})\s+(?P<op>in|notin)\s+\((?P<values>[^)]*)\)\s*$"
)
_EQUALITY_REQUIREMENT = re.compile(
    rf"^\s*(?P<key>{_KEY})\s*(?P<op>==|!=|=)\s*(?P<value>[^=!,]*?)\s*$"
)
_EXISTS_REQUIREMENT = re.compile(rf"^\s*(?P<negated>!?)\s*(?P<key>{_KEY})\s*$")


@dataclass(frozen=True)
class LabelRequirement:
    key: str
    operator: str  # one of "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also match objects that do not carry the label at all.
        return not present or value not in self.values


def _split_top_level(selector: str) -> list[str]:
    """Split at commas that are not inside an ``in (...)`` value set."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def parse_label_selector(selector: str) -> list[LabelRequirement]:
    requirements: list[LabelRequirement] = []
    for part in _split_top_level(selector):
        if match := _SET_REQUIREMENT.match(part):
            values = frozenset(v.strip() for v in match["values"].split(",") if v.strip())
            requirements.append(LabelRequirement(match["key"], match["op"], values))
        elif match := _EQUALITY_REQUIREMENT.match(part):
            operator = "!=" if match["op"] == "!=" else "="
            requirements.append(
                LabelRequirement(match["key"], operator, frozenset({match["value"]}))
            )
        elif match := _EXISTS_REQUIREMENT.match(part):
            operator = "!exists" if match["negated"] else "exists"
            requirements.append(LabelRequirement(match["key"], operator, frozenset()))
        else:
            raise bad_request(f'unable to parse requirement: "{part.strip()}"')
    return requirements


def label_selector_from_match(selector: Mapping[str, Any]) -> list[LabelRequirement]:
    """The requirements of a structured ``LabelSelector`` (matchLabels + matchExpressions)."""
    requirements = [
        LabelRequirement(key, "=", frozenset({value}))
        for key, value in (selector.get("matchLabels") or {}).items()
    ]
    operators = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}
    for expression in selector.get("matchExpressions") or []:
        operator = operators.get(expression.get("operator", ""))
        if operator is None:
            raise bad_request(f"unsupported selector operator {expression.get('operator')!r}")
        values = frozenset(expression.get("values") or [])
        requirements.append(LabelRequirement(expression["key"], operator, values))
    return requirements


def labels_match(requirements: list[LabelRequirement], obj: Mapping[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(requirement.matches(labels) for requirement in requirements)


def _field_value(obj: Mapping[str, Any], path: str) -> str:
    value: Any = obj
    for segment in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(segment)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse_field_selector(selector: str) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for ``path=value``, ``path==value`` and ``path!=value`` terms, ANDed.

    Any dotted path is accepted; a real server only allows a per-kind list of fields.
    """
    terms: list[tuple[str, bool, str]] = []
    for part in _split_top_level(selector):
        match = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*?)\s*$", part)
        if match is None:
            raise bad_request(f'invalid field selector: "{part.strip()}"')
        terms.append((match[1], match[2] != "!=", match[3]))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, path) == value) == equal for path, equal, value in terms)

    return predicate
