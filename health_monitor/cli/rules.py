"""``health-monitor rules``: check rule files and list the active alert rules."""

from __future__ import annotations

import argparse

from health_monitor.rules import DOMAINS, load_rules


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rules", help="validate and list the YAML alert rules",
                       description="Validate rule files and list the active alert rules (shipped defaults "
                       "plus <data dir>/rules/*.yml).")
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    v = verbs.add_parser("validate", help="check rule files (default: the data directory's rules)")
    v.add_argument("files", nargs="*", metavar="FILE", help="rule files or folders to check")
    v.set_defaults(func=run_validate)
    ls = verbs.add_parser("list", help="list the active rules")
    ls.add_argument("--domain", choices=DOMAINS, help="only this domain")
    ls.add_argument("--rules-file", action="append", default=[], metavar="FILE", help="also load this file")
    ls.set_defaults(func=run_list)


def run_validate(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    # Files given: check them on top of the defaults, so duplicates of a shipped id are caught.
    ruleset = load_rules(ctx.settings, extra_paths=args.files)
    print(f"ok: {len(ruleset)} active rule(s)")
    return 0


def run_list(args: argparse.Namespace, ctx) -> int:  # noqa: ANN001
    ruleset = load_rules(ctx.settings, extra_paths=args.rules_file)
    rules = [r for r in ruleset.rules if not args.domain or r.domain == args.domain]
    if not rules:
        print("no rules")
        return 0
    w_id = max(len(r.id) for r in rules)
    w_type = max(len(r.alert_type) for r in rules)
    print(f"{'id':<{w_id}}  {'domain':<11}  {'severity':<8}  {'alert_type':<{w_type}}  condition")
    for r in rules:
        cond = r.condition.text + (f"  [for {r.for_windows} windows]" if r.for_windows > 1 else "")
        print(f"{r.id:<{w_id}}  {r.domain:<11}  {r.severity:<8}  {r.alert_type:<{w_type}}  {cond}")
    return 0
