"""``errorstream issues``: list, show and change issues (``errorstream issue`` is an alias).

    errorstream issues list [--status unresolved] [--priority high] [--service S] [--q TEXT]
                            [--sort last_seen|first_seen|count|users|priority] [--json]
    errorstream issues show FP [--json]           state, audit trail, merge candidates
    errorstream issues resolve FP [--in-release R | --in-next-release]
    errorstream issues ignore FP [--until-count N [--in 1h]] [--until-users U] [--for 24h]
                                 [--until-escalating]
    errorstream issues unresolve FP
    errorstream issues merge A B                  fold A into B (also: merge A --into B)
    errorstream issues unmerge A
    errorstream issues assign A [USER]            no USER: unassign
    errorstream issues priority A high|medium|low|auto

Every change takes ``--reason`` and ``--actor`` (default ``$USER``), is published on the
control topic (source ``cli``) and prints the command; ``--wait`` waits until the worker's
API shows the new state. Reads go to the worker's API (embedded engine) or straight to the
ClickHouse server (``clickhouse_url``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
import urllib.parse
from typing import Any

import orjson

from pipeline import issue_queries, queries
from pipeline.control import PRIORITIES, CommandError, make_command, send_command
from pipeline.query_client import QueryFailed, _stamp, fetch_api, print_issue

LIST_FILTERS = ("status", "priority", "service", "environment", "release", "level", "category")


def _actor(args) -> str:
    if args.actor:
        return args.actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _seconds(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return queries.parse_duration(text)
        except ValueError as exc:
            raise CommandError(f"{name}: {exc}") from None


def command_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The command a CLI action asks for (pure apart from the actor's default)."""
    action = args.action
    fields: dict[str, Any] = {}
    if action == "resolve":
        if args.in_release and args.release:
            raise CommandError("give --in-release or --release, not both")
        fields = {
            "release": args.in_release or args.release,
            "in_next_release": True if args.in_next_release else None,
        }
    elif action == "ignore":
        window = _seconds(args.within, "--in")
        if window is not None and args.until_count is None:
            raise CommandError("--in needs --until-count")
        fields = {
            "until_count": args.until_count,
            "until_count_window": None if window is None else int(window),
            "until_users": args.until_users,
            "for_seconds": _seconds(args.for_, "--for"),
            "until_time": args.until_time,
            "until_escalating": True if args.until_escalating else None,
        }
    elif action == "merge":
        target = args.target or args.into
        if not target or (args.target and args.into and args.target != args.into):
            raise CommandError("merge needs one target: `merge A B` or `merge A --into B`")
        fields = {"into": target}
    elif action == "assign":
        fields = {"assignee": args.user or None}
    elif action == "priority":
        fields = {"priority": args.priority}
    return make_command(
        action,
        args.fingerprint,
        actor=_actor(args),
        source="cli",
        reason=args.reason,
        **fields,
    )


def _read(settings, path: str, params: dict[str, Any], direct) -> Any:
    if settings.clickhouse_url:
        from pipeline.storage import open_backend

        backend = open_backend(settings)
        try:
            return direct(backend)
        finally:
            backend.close()
    return fetch_api(settings, path, params)


def _issue_path(fp: str, suffix: str = "") -> str:
    return f"/api/issues/{urllib.parse.quote(fp, safe='')}{suffix}"


def print_list(data: dict[str, Any], out=sys.stdout) -> None:
    out.write(
        f"{'status':<10} {'priority':<8} {'events':>8} {'users':>6}  {'last seen':<16}  "
        f"{'fingerprint':<16}  title\n"
    )
    for i in data["issues"]:
        prio = i["priority"] + ("*" if i["priority_source"] == "manual" else "")
        out.write(
            f"{i['status']:<10} {prio:<8} {i['count']:>8} {i['users']:>6}  "
            f"{_stamp(i['last_seen']):<16}  {i['fingerprint'][:16]:<16}  {i['title'][:60]}\n"
        )
    out.write(f"{len(data['issues'])} of {data['total']} issues (* priority set by a person)\n")


def print_show(data: dict[str, Any], out=sys.stdout) -> None:
    print_issue(data, out)
    extra = f"  status {data['status']}, priority {data['priority']} ({data['priority_source']})"
    extra += f", assignee {data['assignee'] or '-'}"
    if data.get("merged_into"):
        extra += f", merged into {data['merged_into']}"
    out.write(extra + "\n")
    out.write("audit (newest first):\n" if data["audit"] else "audit: none\n")
    for a in data["audit"]:
        details = orjson.dumps(a["details"]).decode() if a["details"] else ""
        reason = f" — {a['reason']}" if a["reason"] else ""
        out.write(
            f"  {_stamp(a['at'])}  {a['actor']} ({a['source']}) {a['action']} {details}{reason}\n"
        )
    out.write("merge candidates (similar issues):\n" if data["similar"] else "")
    for s in data["similar"]:
        out.write(f"  {s['score']:.2f}  {s['fingerprint'][:16]:<16}  {s['title'][:60]}\n")


def _wait_visible(settings, command: dict[str, Any], timeout: float) -> float | None:
    """Seconds until the worker's API shows the command applied (the audit entry), or None."""
    fp = command["fingerprint"]
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            audit = _read(
                settings,
                _issue_path(fp, "/audit"),
                {},
                lambda b: {"audit": issue_queries.issue_audit(b, fp)},
            )["audit"]
        except QueryFailed:
            audit = []
        if any(a.get("command_id") == command["command_id"] for a in audit):
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def cmd_issues(args: argparse.Namespace) -> int:
    from pipeline.settings import ConfigError, load_settings

    try:
        settings = load_settings(config_file=getattr(args, "config", None))
        if args.action == "list":
            params = {k: getattr(args, k) for k in LIST_FILTERS if getattr(args, k)}
            if args.q:
                params["q"] = args.q
            params.update(sort=args.sort, order=args.order, limit=args.limit, offset=args.offset)
            data = _read(
                settings,
                "/api/issues",
                params,
                lambda b: issue_queries.list_issues(
                    b,
                    status=params.pop("status", ""),
                    **{k: v for k, v in params.items()},
                ),
            )
            (print_json if args.json else print_list)(data)
            return 0
        if args.action == "show":
            fp = args.fingerprint
            data = _read(settings, _issue_path(fp), {}, lambda b: issue_queries.issue_view(b, fp))
            if data is None:
                raise QueryFailed(f"no such issue: {fp}")
            (print_json if args.json else print_show)(data)
            return 0
        command = command_from_args(args)
        asyncio.run(send_command(settings, command))
    except (CommandError, ConfigError, ValueError) as exc:
        print(f"errorstream issues: {exc}", file=sys.stderr)
        return 2
    except QueryFailed as exc:
        print(f"errorstream issues: {exc}", file=sys.stderr)
        return 1
    except (TimeoutError, OSError) as exc:
        print(f"errorstream issues: cannot reach Kafka ({exc})", file=sys.stderr)
        return 2
    print(orjson.dumps(command).decode())
    if args.wait:
        took = _wait_visible(settings, command, args.wait)
        if took is None:
            print(f"errorstream issues: not visible after {args.wait}s", file=sys.stderr)
            return 1
        print(f"visible after {took:.2f}s", file=sys.stderr)
    return 0


def print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _change(actions, name: str, help_text: str) -> argparse.ArgumentParser:
    p = actions.add_parser(name, help=help_text)
    p.add_argument("fingerprint")
    p.add_argument("--reason", help="why (kept in the audit trail)")
    p.add_argument("--actor", help="who (default: $USER)")
    p.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait until the worker's API shows the change (prints how long it took)",
    )
    return p


def register(subparsers: Any) -> None:
    """``errorstream issues ...`` and its alias ``errorstream issue ...``."""
    issues = subparsers.add_parser(
        "issues",
        aliases=["issue"],
        help="list, show, resolve, ignore, merge, assign or prioritize issues",
    )
    actions = issues.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", help="issues with filters (default: all but merged)")
    ls.add_argument("--status", choices=issue_queries.STATUSES)
    ls.add_argument("--priority", choices=("high", "medium", "low"))
    ls.add_argument("--level", choices=issue_queries.LEVELS)
    for name in ("service", "environment", "release", "category"):
        ls.add_argument(f"--{name}")
    ls.add_argument("--q", help="text in the title or culprit, or a fingerprint prefix")
    ls.add_argument("--sort", default="last_seen", choices=tuple(issue_queries.SORTS))
    ls.add_argument("--order", default="desc", choices=issue_queries.ORDERS)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--offset", type=int, default=0)
    ls.add_argument("--json", action="store_true")
    show = actions.add_parser("show", help="one issue: state, audit trail, merge candidates")
    show.add_argument("fingerprint")
    show.add_argument("--json", action="store_true")

    resolve = _change(actions, "resolve", "mark resolved (optionally in a release)")
    which = resolve.add_mutually_exclusive_group()
    which.add_argument("--in-release", help="events from older releases do not reopen it")
    which.add_argument("--release", help=argparse.SUPPRESS)  # the earlier spelling
    which.add_argument(
        "--in-next-release",
        action="store_true",
        help="only a release newer than the latest seen reopens it",
    )
    ignore = _change(actions, "ignore", "silence it until a condition (or for good)")
    ignore.add_argument("--until-count", type=int, help="until N more events")
    ignore.add_argument(
        "--in", dest="within", help="... within this window (90s, 15m, 1h, 7d; with --until-count)"
    )
    ignore.add_argument("--until-users", type=int, help="until U more users")
    ignore.add_argument("--for", dest="for_", help="for this long (24h, 7d)")
    ignore.add_argument("--until-time", type=float, help="until this event time (epoch seconds)")
    ignore.add_argument(
        "--until-escalating",
        action="store_true",
        help="until its hourly rate exceeds the forecast from its history",
    )
    _change(actions, "unresolve", "back to unresolved")
    merge = _change(actions, "merge", "fold FINGERPRINT into TARGET")
    merge.add_argument("target", nargs="?")
    merge.add_argument("--into", help="the target (the earlier spelling)")
    _change(actions, "unmerge", "undo a merge for new events")
    assign = _change(actions, "assign", "assign to USER (no USER: unassign)")
    assign.add_argument("user", nargs="?")
    priority = _change(actions, "priority", "set the priority (auto: computed again)")
    priority.add_argument("priority", choices=PRIORITIES)
    issues.set_defaults(func=cmd_issues)
