"""Declarative alert rules: loaded from YAML, validated at load, evaluated vectorized on pandas.

A rule file is a mapping with a ``rules:`` list (and optionally ``disable:``, a list of rule ids
to switch off, e.g. a shipped default). Every problem found while loading is reported as one line
``file:line: rule <id>: what is wrong``, so a user can fix their file without reading code.

Why one module over 400 lines: loading (with line-numbered validation) and vectorized evaluation
share one rule model; expressions live in ``expr.py``.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from health_monitor.errors import HealthMonitorError
from health_monitor.rules.columns import DOMAINS, known_columns
from health_monitor.rules.expr import Expression, ExpressionError, parse

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.yml")

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
#: Rule severity -> alert score, so rule hits and detector scores share one 0-1 scale.
SEVERITY_SCORE = {"LOW": 0.4, "MEDIUM": 0.6, "HIGH": 0.8, "CRITICAL": 0.95}

REQUIRED_FIELDS = ("id", "domain", "entity_type", "alert_type", "severity", "condition", "message")
OPTIONAL_FIELDS = ("for", "min_occurrences", "description", "enabled")

#: Columns of :meth:`RuleSet.evaluate`'s result.
HIT_COLUMNS = ["row", "rule_id", "alert_type", "severity", "score", "message", "evidence"]


class RuleError(HealthMonitorError):
    """A rule file that cannot be loaded; the message is ``file:line: rule id: problem``."""


@dataclass(frozen=True)
class Rule:
    """One validated rule.

    Attributes:
        id: unique rule id (appears in alert evidence as ``rule:<id>``).
        domain: cost | security | reliability | performance | quality.
        entity_type: entity type the rule applies to, or ``*`` for any.
        alert_type: the alert type raised (alerts of one type on one entity are de-duplicated).
        severity: LOW | MEDIUM | HIGH | CRITICAL.
        condition: the parsed condition.
        message: ``str.format`` template over the frame's columns.
        for_windows: the condition must hold on this many consecutive windows of the entity.
        description: why the rule exists.
        source: ``file:line`` the rule was loaded from.
    """

    id: str
    domain: str
    entity_type: str
    alert_type: str
    severity: str
    condition: Expression
    message: str
    for_windows: int = 1
    description: str = ""
    source: str = ""

    @property
    def score(self) -> float:
        return SEVERITY_SCORE[self.severity]

    @property
    def message_fields(self) -> list[tuple[str, str]]:
        """(column, format spec) pairs of the message template."""
        return [(f, spec or "") for _, f, spec, _ in string.Formatter().parse(self.message) if f]


@dataclass
class RuleSet:
    """The active rules, evaluated per domain on a frame of window features."""

    rules: list[Rule] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rules)

    def for_domain(self, domain: str) -> list[Rule]:
        return [r for r in self.rules if r.domain == domain]

    def get(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise HealthMonitorError(f"no rule with id {rule_id!r}")

    def evaluate(self, domain: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Hits of the domain's rules on ``frame`` (one row per entity and window).

        Conditions are evaluated on whole columns; only the (few) hits are formatted row by row.

        Returns:
            A DataFrame with columns ``row`` (position of the row in ``frame``, as for
            ``frame.iloc``), ``rule_id``, ``alert_type``, ``severity``, ``score`` (the severity on
            the 0-1 scale), ``message`` (the rendered template) and ``evidence`` (list of strings:
            ``rule:<id>`` then the columns the condition used, with their values).
        """
        rules = self.for_domain(domain)
        if frame is None or frame.empty or not rules:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in HIT_COLUMNS}).astype(
                {"row": "int64", "score": "float64"})
        positional = frame.reset_index(drop=True)
        parts: list[pd.DataFrame] = []
        for rule in rules:
            mask = rule.condition.evaluate(positional)
            if rule.entity_type != "*" and "entity_type" in positional.columns:
                mask &= positional["entity_type"].astype("string").eq(rule.entity_type).fillna(False)
            if rule.for_windows > 1:
                mask = _held_for(positional, mask, rule.for_windows)
            rows = np.flatnonzero(mask.to_numpy())
            if not len(rows):
                continue
            # Only the columns the message and evidence use: formatting is the per-hit cost.
            used = [c for c in dict.fromkeys([*rule.condition.columns, *(f for f, _ in rule.message_fields)])
                    if c in positional.columns]
            records = positional.iloc[rows][used].to_dict("records")
            parts.append(pd.DataFrame({
                "row": rows.astype("int64"),
                "rule_id": rule.id,
                "alert_type": rule.alert_type,
                "severity": rule.severity,
                "score": rule.score,
                "message": [render(rule.message, rec) for rec in records],
                "evidence": [_evidence(rule, rec) for rec in records],
            }))
        if not parts:
            return self.evaluate(domain, frame.iloc[0:0])
        return pd.concat(parts, ignore_index=True).sort_values(["row", "rule_id"], ignore_index=True)


def _held_for(frame: pd.DataFrame, mask: pd.Series, n: int) -> pd.Series:
    """True where the condition held on the last ``n`` consecutive windows of the same entity.

    Only windows present in ``frame`` count: the streaming queries pass each entity's recent
    windows, so a ``for`` longer than the frame's history simply cannot fire yet.
    """
    keys = [c for c in ("entity_type", "entity_id") if c in frame.columns]
    order = frame.sort_values([*keys, "window_start"] if "window_start" in frame.columns else keys,
                              kind="stable").index
    m = mask.loc[order].astype(int)
    if keys:
        groups = [frame.loc[order, k].astype(str) for k in keys]
        # Length of the current run of True per entity: reset the cumulative sum at each False.
        breaks = (m == 0).astype(int).groupby(groups).cumsum()
        run = m.groupby([*groups, breaks]).cumsum()
    else:
        run = m.groupby((m == 0).cumsum()).cumsum()
    return (run >= n).reindex(frame.index).fillna(False).astype(bool)


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return "n/a"
    if isinstance(value, np.generic):
        value = value.item()
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        # A numeric spec on a string column, say: show the value rather than fail the alert.
        return str(value)


def render(template: str, row: dict[str, Any]) -> str:
    """Fill a message template from one row; missing or null values print as ``n/a``.

    Only plain ``{column}`` / ``{column:spec}`` fields exist (checked at load), so the template
    cannot reach attributes or items of the values.
    """
    out = []
    for literal, name, spec, _conv in string.Formatter().parse(template):
        out.append(literal)
        if name:
            out.append(_fmt(row.get(name), spec or ""))
    return "".join(out)


def _evidence(rule: Rule, row: dict[str, Any]) -> list[str]:
    ev = [f"rule:{rule.id}"]
    for col in rule.condition.columns:
        if col in row:
            ev.append(f"{col}={_fmt(row[col], '.4g' if isinstance(row[col], float) else '')}")
    return ev


# ---------------------------------------------------------------------------------------------
# Loading and validation


#: A rule file is a few kilobytes; this bound keeps a wrong path (a log, a binary) from being parsed.
MAX_RULE_FILE_BYTES = 1_000_000
#: Largest width or precision in a message field's format spec ({cost_usd:>12,.2f}).
MAX_FORMAT_NUMBER = 100


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that remembers the line of every mapping and of each of its keys, and refuses
    YAML aliases: a chain of them (the "billion laughs") expands to gigabytes from a few lines.
    """

    def compose_node(self, parent: Any, index: Any) -> Any:  # noqa: ANN401 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, "YAML aliases (*name) are not allowed in rule files; write the value out",
                event.start_mark)
        return super().compose_node(parent, index)


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict:
    mapping = _LineDict(loader.construct_mapping(node, deep=True))
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if hasattr(k, "value")}
    return mapping


class _LineDict(dict):
    line: int = 0
    key_lines: dict[str, int]


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_yaml(path: Path) -> Any:
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_RULE_FILE_BYTES + 1)
    except OSError as exc:
        raise RuleError(f"{path}:1: cannot read rule file ({exc.strerror}); check the path and its permissions"
                        ) from None
    if len(raw) > MAX_RULE_FILE_BYTES:
        raise RuleError(f"{path}:1: rule file is larger than {MAX_RULE_FILE_BYTES:,} bytes; is this a rule file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise RuleError(f"{path}:{line}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); "
                        "save the rule file as UTF-8") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else f"{path}:1"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RuleError(f"{where}: invalid YAML: {problem}") from None
    except (RecursionError, MemoryError) as exc:
        raise RuleError(f"{path}:1: YAML nested too deeply or too large to load ({type(exc).__name__})") from None


def parse_rules(path: Path) -> tuple[list[Rule], list[str]]:
    """Validate one rule file; returns its rules and the ids it disables."""
    data = _load_yaml(path)
    if data is None:
        return [], []
    if not isinstance(data, dict) or not isinstance(data.get("rules", []), list):
        raise RuleError(f"{path}:1: a rule file is a mapping with a 'rules:' list")
    unknown_top = set(data) - {"rules", "disable"}
    if unknown_top:
        raise RuleError(f"{path}:1: unknown top-level key(s) {', '.join(sorted(map(str, unknown_top)))} "
                        "(expected 'rules' and optionally 'disable')")
    disable = data.get("disable") or []
    if not isinstance(disable, list) or not all(isinstance(x, str) for x in disable):
        raise RuleError(f"{path}:{data.key_lines.get('disable', 1)}: 'disable' must be a list of rule ids")
    rules = []
    for i, raw in enumerate(data.get("rules") or []):
        try:
            rules.append(_parse_rule(path, raw, i))
        except (RecursionError, MemoryError) as exc:
            # Whatever slipped past the bounds still ends as one line naming the file and rule.
            raise RuleError(f"{path}:{getattr(raw, 'line', '?')}: rules[{i}]: too large or nested too deeply "
                            f"to check ({type(exc).__name__}); simplify the rule") from None
    return [r for r in rules if r is not None], list(disable)


def _parse_rule(path: Path, raw: Any, index: int) -> Rule | None:
    line = getattr(raw, "line", 0)
    if not isinstance(raw, dict):
        raise RuleError(f"{path}:{line or '?'}: rules[{index}] must be a mapping of fields")
    rid = raw.get("id")
    who = f"rule {rid}" if rid else f"rules[{index}]"

    def fail(msg: str, key: str | None = None) -> RuleError:
        at = raw.key_lines.get(key, line) if key and hasattr(raw, "key_lines") else line
        return RuleError(f"{path}:{at}: {who}: {msg}")

    missing = [f for f in REQUIRED_FIELDS if raw.get(f) in (None, "")]
    if missing:
        raise fail(f"missing field(s) {', '.join(missing)}")
    unknown = [str(k) for k in raw if k not in REQUIRED_FIELDS + OPTIONAL_FIELDS]
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)} "
                   f"(allowed: {', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})", unknown[0])
    for f in ("id", "domain", "entity_type", "alert_type", "severity", "condition", "message"):
        if not isinstance(raw[f], str):
            raise fail(f"{f} must be a string", f)
    if not raw["id"].replace("_", "").replace("-", "").replace(".", "").isalnum():
        raise fail("id may hold only letters, digits, '_', '-' and '.'", "id")
    domain = raw["domain"].strip().lower()
    if domain not in DOMAINS:
        raise fail(f"unknown domain {raw['domain']!r} (expected one of {', '.join(DOMAINS)})", "domain")
    severity = raw["severity"].strip().upper()
    if severity not in SEVERITIES:
        raise fail(f"unknown severity {raw['severity']!r} (expected one of {', '.join(SEVERITIES)})",
                   "severity")
    try:
        cond = parse(raw["condition"])
    except ExpressionError as exc:
        raise fail(f"bad condition: {exc}", "condition") from None
    known = known_columns(domain)
    if known is not None:
        bad = [c for c in cond.columns if c not in known]
        if bad:
            raise fail(f"unknown column(s) {', '.join(bad)} for domain {domain} in condition "
                       f"(see health_monitor/rules/columns.py)", "condition")
    try:
        fields = [(f, spec) for _, f, spec, conv in string.Formatter().parse(raw["message"]) if f is not None]
    except ValueError as exc:
        raise fail(f"bad message template: {exc}", "message") from None
    for f, spec in fields:
        if not f.isidentifier():
            raise fail(f"message field {{{f}}} must be a plain column name", "message")
        problem = _spec_problem(spec or "")
        if problem:
            raise fail(f"message field {{{f}:{spec}}}: {problem}", "message")
        if known is not None and f not in known:
            raise fail(f"unknown column {f} for domain {domain} in message", "message")
    n = raw.get("for", raw.get("min_occurrences", 1))
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise fail("'for' must be a whole number of windows >= 1", "for" if "for" in raw else "min_occurrences")
    for f in ("description", "message"):
        if len(str(raw.get(f) or "")) > 10_000:
            raise fail(f"{f} is longer than 10,000 characters", f)
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled must be true or false", "enabled")
    if not enabled:
        return None
    return Rule(id=raw["id"], domain=domain, entity_type=raw["entity_type"].strip(),
                alert_type=raw["alert_type"].strip(), severity=severity, condition=cond,
                message=raw["message"], for_windows=n, description=str(raw.get("description") or ""),
                source=f"{path}:{line}")


def _spec_problem(spec: str) -> str | None:
    """Why a format spec is refused, or None: nested fields, or a width/precision that would
    make one message allocate megabytes (``{x:>2000000000}``)."""
    if "{" in spec or "}" in spec:
        return "nested fields in a format spec are not allowed"
    for number in re.findall(r"\d+", spec):
        if int(number) > MAX_FORMAT_NUMBER:
            return f"width or precision {number} is too large (at most {MAX_FORMAT_NUMBER})"
    return None


def rule_files(settings: Any, extra_paths: Iterable[str | Path] | None = None) -> list[Path]:
    """The files :func:`load_rules` reads, in order: defaults, data_dir/rules/*.yml, extras."""
    files = [DEFAULT_RULES_FILE]
    user_dir = Path(settings.data_dir) / "rules" if settings is not None else None
    if user_dir and user_dir.is_dir():
        files += sorted(p for p in user_dir.iterdir() if p.suffix in (".yml", ".yaml"))
    for p in extra_paths or []:
        p = Path(p)
        if p.is_dir():
            files += sorted(q for q in p.iterdir() if q.suffix in (".yml", ".yaml"))
        elif p.exists():
            files.append(p)
        else:
            raise RuleError(f"{p}: rule file not found")
    return files


def load_rules(settings: Any = None, extra_paths: Iterable[str | Path] | None = None,
               include_defaults: bool = True) -> RuleSet:
    """Load and validate the shipped default rules plus the user's rule files.

    Args:
        settings: :class:`~health_monitor.settings.Settings`; user rules are read from
            ``settings.data_dir / "rules" / *.yml`` (None: defaults and extras only).
        extra_paths: more rule files or folders (e.g. ``rules validate FILE``).
        include_defaults: False to load only the user's files (validation of one file).

    Raises:
        RuleError: one line ``file:line: rule <id>: problem`` for the first problem found.
    """
    files = rule_files(settings, extra_paths)
    if not include_defaults:
        files = [f for f in files if f != DEFAULT_RULES_FILE]
    rules: list[Rule] = []
    disabled: set[str] = set()
    seen: dict[str, str] = {}
    for path in files:
        file_rules, file_disable = parse_rules(path)
        disabled.update(file_disable)
        for r in file_rules:
            if r.id in seen:
                raise RuleError(f"{r.source}: rule {r.id}: duplicate id (first defined at {seen[r.id]}); "
                                "use 'disable: [id]' to replace a default rule")
            seen[r.id] = r.source
            rules.append(r)
    return RuleSet([r for r in rules if r.id not in disabled])
