"""Which audit action names count as administrative in the security stream (ADMIN_REGEX)."""

from __future__ import annotations

import re

import pytest

from health_monitor.streaming.sources import ADMIN_REGEX, LOGIN_REGEX


def _is_admin(action: str) -> bool:
    # The stream's rule: admin pattern and not a login (Spark's rlike is a find, as re.search).
    return re.search(ADMIN_REGEX, action) is not None and re.search(LOGIN_REGEX, action) is None


@pytest.mark.parametrize("action", ["generateDbToken", "createToken", "generateToken", "revokeToken",
                                    "updatePermissions", "createUser", "putSecret", "addPrincipalToGroup"])
def test_admin_actions_are_recognised(action: str) -> None:
    assert _is_admin(action)


@pytest.mark.parametrize("action", ["tokenLogin", "getTable", "commandSubmit", "downloadQueryResult"])
def test_ordinary_actions_are_not_admin(action: str) -> None:
    assert not _is_admin(action)
