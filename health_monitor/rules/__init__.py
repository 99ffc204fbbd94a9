"""Declarative YAML alert rules: load, validate and evaluate them over window feature frames."""

from health_monitor.rules.columns import COMMON_COLUMNS, DOMAIN_COLUMNS, DOMAINS, known_columns
from health_monitor.rules.engine import (
    DEFAULT_RULES_FILE,
    SEVERITIES,
    SEVERITY_SCORE,
    Rule,
    RuleError,
    RuleSet,
    load_rules,
    render,
)
from health_monitor.rules.expr import Expression, ExpressionError, parse

__all__ = [
    "COMMON_COLUMNS", "DEFAULT_RULES_FILE", "DOMAINS", "DOMAIN_COLUMNS", "SEVERITIES", "SEVERITY_SCORE",
    "Expression", "ExpressionError", "Rule", "RuleError", "RuleSet", "known_columns", "load_rules",
    "parse", "render",
]
