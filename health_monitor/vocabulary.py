"""Words the stream and the batch features must agree on, defined once (no Spark, no pandas).

Both Spark (``rlike``, Java regex) and Python (``re``) read these patterns, so they use only
syntax the two share.
"""

from __future__ import annotations

import re

#: Table names that mark sensitive data: a marker as a whole name part (``hr.employees``,
#: ``main.payments.cards``) or, for the unambiguous ones, anywhere (``customers_pii``).
SENSITIVE_TABLE_REGEX = (r"(?i)(^|[._])(pii|sensitive|hr|payments?|salary|salaries|ssn|payroll|"
                         r"credit_cards?|medical|phi|gdpr)([._]|$)|pii|sensitive|payroll|salar")


def is_sensitive_table(name: str | None) -> bool:
    """True when the table's full name marks it as sensitive (the regex Spark applies too)."""
    return bool(name) and re.search(SENSITIVE_TABLE_REGEX, name) is not None
