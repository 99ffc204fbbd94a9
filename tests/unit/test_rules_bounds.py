"""Bounded rules: hostile rule files are refused at load with one ``file:line`` line, and evaluation
never wraps integers or allocates without bound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from health_monitor.cli import main
from health_monitor.rules import load_rules
from health_monitor.rules.engine import RuleError
from health_monitor.rules.expr import ExpressionError, parse

RULE = """rules:
  - id: hostile
    domain: cost
    entity_type: workspace
    alert_type: cost_spike
    severity: HIGH
    condition: {condition}
    message: {message}
"""


def _write(tmp_path: Path, condition: str = "cost_usd > 1", message: str = "spend {cost_usd:.2f}",
           extra: str = "") -> Path:
    path = tmp_path / "hostile.yml"
    # JSON strings are YAML strings: no quoting puzzles whatever the hostile text holds.
    path.write_text(RULE.format(condition=json.dumps(condition), message=json.dumps(message)) + extra)
    return path


@pytest.mark.parametrize(("condition", "why"), [
    ("'x' * 2000000000 == cost_usd", "arithmetic on the text"),
    ("'%2000000000d' % 1 == cost_usd", "arithmetic on the text"),
    ("cost_usd > 1 + " + " + ".join(["1"] * 1500), "characters long"),
    ("cost_usd > 1 + " + " + ".join(["1"] * 300), "terms and operators"),
    ("not " * 60 + "cost_usd > 1", "nested too deeply"),
    ("cost_usd == '" + "y" * 1200 + "'", "text literal"),
    ("cost_usd > " + "9" * 400, "out of range"),
    ("cost_usd > 1e400", "out of range"),
])
def test_unbounded_conditions_are_refused_with_file_and_line(tmp_path: Path, condition: str, why: str) -> None:
    path = _write(tmp_path, condition=condition)
    with pytest.raises(RuleError, match=why) as err:
        load_rules(None, [path], include_defaults=False)
    assert str(err.value).startswith(f"{path}:7: rule hostile:")
    assert "\n" not in str(err.value)


def test_a_100k_term_chain_is_one_line_not_a_recursion_error() -> None:
    with pytest.raises(ExpressionError, match="characters long"):
        parse(" + ".join(["cost_usd"] * 100_000) + " > 1")


@pytest.mark.parametrize("message", ["{cost_usd:>2000000000}", "{cost_usd:.500f}", "{cost_usd:{cost_usd}}"])
def test_huge_format_widths_are_refused(tmp_path: Path, message: str) -> None:
    with pytest.raises(RuleError, match="too large|nested fields") as err:
        load_rules(None, [_write(tmp_path, message=message)], include_defaults=False)
    assert str(err.value).startswith(f"{tmp_path / 'hostile.yml'}:8: rule hostile:")


def test_yaml_alias_bomb_is_refused_before_expansion(tmp_path: Path) -> None:
    bomb = ["a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        bomb.append(f"{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    path = tmp_path / "bomb.yml"
    path.write_text("\n".join(bomb) + "\nrules: []\n")
    with pytest.raises(RuleError, match=r"bomb.yml:2: invalid YAML: YAML aliases"):
        load_rules(None, [path], include_defaults=False)
    # An alias inside a rule's description is refused the same way.
    path = _write(tmp_path, extra="    description: *x\n").with_name("hostile.yml")
    path.write_text("x: &x hello\n" + path.read_text())
    with pytest.raises(RuleError, match="aliases"):
        load_rules(None, [path], include_defaults=False)


def test_binary_and_latin1_files_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin.yml"
    path.write_bytes(b"rules:\n  - id: caf\xe9\n")
    with pytest.raises(RuleError, match=r"latin.yml:2: not UTF-8 text \(byte 0xe9\)"):
        load_rules(None, [path], include_defaults=False)
    binary = tmp_path / "blob.yml"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RuleError, match=r"blob.yml:\d+: "):
        load_rules(None, [binary], include_defaults=False)


def test_deeply_nested_yaml_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yml"
    path.write_text("rules: " + "[" * 20000 + "]" * 20000 + "\n")
    with pytest.raises(RuleError, match=r"deep.yml:1: "):
        load_rules(None, [path], include_defaults=False)


def test_integer_columns_do_not_wrap() -> None:
    frame = pd.DataFrame({"n": np.array([2, 0], dtype="int64"),
                          "m": pd.array([2, None], dtype="Int64")})
    assert parse("n * 9223372036854775807 > 1").evaluate(frame).tolist() == [True, False]
    assert parse("m * 9007199254740992 * 9007199254740992 > 1").evaluate(frame).tolist() == [True, False]


def test_text_columns_are_never_repeated_or_formatted() -> None:
    frame = pd.DataFrame({"s": ["abc", "%d"], "n": [3, 4]})
    # Would be 'abcabcabc' / a formatting error in plain pandas; in rules, no number results.
    assert parse("s * n == 'abcabcabc'").evaluate(frame).tolist() == [False, False]
    assert parse("s % n == '4'").evaluate(frame).tolist() == [False, False]


def test_rules_validate_cli_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, condition="'x' * 2000000000 == cost_usd")
    assert main(["--data-dir", str(tmp_path / "data"), "rules", "validate", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {path}:7: rule hostile:") and "\n" not in err
