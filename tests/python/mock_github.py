"""A local stand-in for the GitHub REST and GraphQL API, for the proxy's
integration tests (and for repository visibility look-ups).

It serves a fixed set of repositories (public and private), issues and
pull requests by authors of every ``author_association``, comments,
commits, files, search, the user, metadata endpoints, write endpoints, and
a small GraphQL executor (enough of the schema for ``gh issue list``,
``gh pr list``, ``gh issue view``, ``gh repo view`` and the proxy's tests).
Every request it receives is recorded; failures can be injected.

Run: ``python3 mock_github.py [--port 0] [--tls-cert C --tls-key K]``; it
prints ``MOCK_GITHUB_PORT=<port>`` on stdout once listening. Paths with a
``/api/v3`` prefix (GHES style) and ``/api/graphql`` are served too.

Control endpoints (never recorded), all JSON:

- ``GET /_mock/requests``: the recorded requests, oldest first, each
  ``{"method", "path", "query", "headers" (lower-case names), "body"}``.
- ``DELETE /_mock/requests``: forgets them.
- ``POST /_mock/faults``: ``{"faults": [{"path": REGEX, "method": "GET"?,
  "mode": "500" | "502" | "429" | "hang" | "close", "seconds": N?,
  "times": N?}]}`` replaces the faults. ``hang`` sleeps ``seconds``
  (default 600) before answering 504; ``close`` drops the connection;
  ``429`` answers a rate limit (``X-RateLimit-Remaining: 0``).
- ``POST /_mock/visibility``: ``{"owner/repo": "public" | "private" |
  "404" | "500" | "hang"}`` overrides what ``GET /repos/{owner}/{repo}``
  (and the repository search) answer for those repositories; ``{}``
  resets.
- ``POST /_mock/reset``: faults, visibility overrides and recorded
  requests all cleared.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import ssl
import sys
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "https://api.github.com"

# ---------------------------------------------------------------------------
# Fixture data
# ---------------------------------------------------------------------------

REPOSITORIES = {
    "octo-org/api": {"private": False, "default_branch": "main"},
    "octo-org/secret": {"private": True, "default_branch": "main"},
    "acme/web": {"private": False, "default_branch": "main"},
    "acme/internal": {"private": True, "default_branch": "main"},
}

# (login, author_association, user type) of issue authors, one issue each.
AUTHORS = [
    ("alice", "OWNER", "User"),
    ("bob", "MEMBER", "User"),
    ("carol", "COLLABORATOR", "User"),
    ("dave", "CONTRIBUTOR", "User"),
    ("erin", "FIRST_TIME_CONTRIBUTOR", "User"),
    ("frank", "FIRST_TIMER", "User"),
    ("grace", "NONE", "User"),
    ("dependabot[bot]", "NONE", "Bot"),
    ("mallory", "MEMBER", "User"),
    ("henry", "MANNEQUIN", "User"),
]

# Pull requests: (number, login, association, merged).
PULLS = [
    (101, "alice", "OWNER", True),
    (102, "bob", "MEMBER", False),
    (103, "dave", "CONTRIBUTOR", False),
    (104, "grace", "NONE", False),
    (105, "grace", "NONE", True),
]

VIEWER = {"login": "octocat", "id": 1, "type": "User", "name": "The Octocat"}


def user(login: str, kind: str = "User") -> dict:
    return {
        "login": login,
        "id": zlib.crc32(login.encode()) % 100000,
        "type": kind,
        "html_url": f"https://github.com/{login}",
    }


def timestamp(n: int) -> str:
    return f"2024-01-{1 + n % 28:02d}T10:00:00Z"


def repo_object(full_name: str, private: bool) -> dict:
    owner, name = full_name.split("/")
    return {
        "id": zlib.crc32(full_name.encode()) % 1000000,
        "node_id": f"R_{full_name}",
        "name": name,
        "full_name": full_name,
        "owner": user(owner, "Organization"),
        "private": private,
        "visibility": "private" if private else "public",
        "html_url": f"https://github.com/{full_name}",
        "url": f"{API}/repos/{full_name}",
        "description": f"the {full_name} repository",
        "default_branch": REPOSITORIES.get(full_name, {}).get("default_branch", "main"),
        "has_issues": True,
    }


def issue_object(full_name: str, number: int) -> dict | None:
    if not 1 <= number <= len(AUTHORS):
        return None
    login, association, kind = AUTHORS[number - 1]
    return {
        "id": 1000 + number,
        "node_id": f"I_{full_name}#{number}",
        "number": number,
        "title": f"issue {number} by {login}",
        "body": f"body of issue {number} in {full_name}",
        "state": "open",
        "user": user(login, kind),
        "author_association": association,
        "labels": [],
        "comments": 2,
        "created_at": timestamp(number),
        "updated_at": timestamp(number),
        "closed_at": None,
        "html_url": f"https://github.com/{full_name}/issues/{number}",
        "url": f"{API}/repos/{full_name}/issues/{number}",
        "repository_url": f"{API}/repos/{full_name}",
    }


def comment_objects(full_name: str, number: int) -> list:
    comments = []
    for index, (login, association, kind) in enumerate(
        [("bob", "MEMBER", "User"), ("grace", "NONE", "User")]
    ):
        comments.append(
            {
                "id": number * 100 + index,
                "body": f"comment {index} on {full_name}#{number} by {login}",
                "user": user(login, kind),
                "author_association": association,
                "created_at": timestamp(index),
                "html_url": f"https://github.com/{full_name}/issues/{number}#c{index}",
                "issue_url": f"{API}/repos/{full_name}/issues/{number}",
            }
        )
    return comments


def pull_object(full_name: str, number: int) -> dict | None:
    for pr_number, login, association, merged in PULLS:
        if pr_number == number:
            private = is_private(full_name)
            return {
                "id": 5000 + number,
                "node_id": f"PR_{full_name}#{number}",
                "number": number,
                "title": f"pull request {number} by {login}",
                "body": f"body of pull request {number}",
                "state": "closed" if merged else "open",
                "user": user(login),
                "author_association": association,
                "labels": [],
                "merged": merged,
                "merged_at": timestamp(number) if merged else None,
                "draft": False,
                "created_at": timestamp(number),
                "updated_at": timestamp(number),
                "html_url": f"https://github.com/{full_name}/pull/{number}",
                "url": f"{API}/repos/{full_name}/pulls/{number}",
                "head": {"ref": f"feature-{number}", "sha": f"{number:040d}"},
                "base": {"ref": "main", "repo": repo_object(full_name, private)},
            }
    return None


def commit_objects(full_name: str) -> list:
    commits = []
    for index, login in enumerate(["alice", "dave", "mallory"]):
        sha = f"{index + 1:x}" * 40
        commits.append(
            {
                "sha": sha,
                "commit": {"message": f"commit {index} in {full_name}", "author": {"name": login}},
                "author": user(login),
                "html_url": f"https://github.com/{full_name}/commit/{sha}",
                "url": f"{API}/repos/{full_name}/commits/{sha}",
            }
        )
    return commits


class State:
    """Recorded requests, faults and visibility overrides (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list = []
        self.faults: list = []
        self.visibility: dict = {}
        self.created = 0

    def reset(self) -> None:
        with self.lock:
            self.requests = []
            self.faults = []
            self.visibility = {}


STATE = State()


def visibility_mode(full_name: str) -> str | None:
    """The visibility of a repository: an override, the fixture, or None."""
    full_name = full_name.lower()
    with STATE.lock:
        override = STATE.visibility.get(full_name)
    if override is not None:
        return override
    repo = REPOSITORIES.get(full_name)
    if repo is None:
        return None
    return "private" if repo["private"] else "public"


def is_private(full_name: str) -> bool:
    return visibility_mode(full_name) != "public"


# ---------------------------------------------------------------------------
# A small GraphQL executor
# ---------------------------------------------------------------------------


class GraphQLError(Exception):
    pass


TOKEN = re.compile(
    r'\s+|#[^\n]*|,|(?P<spread>\.\.\.)|(?P<punct>[!$():=@\[\]{}|&])'
    r'|(?P<block>"""(?:[^"\\]|\\.|"(?!""))*""")|(?P<string>"(?:[^"\\]|\\.)*")'
    r"|(?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[_A-Za-z][_0-9A-Za-z]*)"
)


def tokenize(text: str) -> list:
    tokens = []
    position = 0
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match:
            raise GraphQLError(f"Syntax Error: unexpected character {text[position]!r}")
        position = match.end()
        kind = match.lastgroup
        if kind is None:
            continue
        value = match.group(kind)
        if kind == "block":
            kind, value = "string", value[3:-3]
        elif kind == "string":
            value = json.loads(value)
        tokens.append((kind, value))
    tokens.append(("eof", None))
    return tokens


class Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.at = 0

    def peek(self, value=None):
        kind, token = self.tokens[self.at]
        if value is None:
            return kind, token
        return token == value and kind in ("punct", "spread", "name")

    def take(self, value=None):
        kind, token = self.tokens[self.at]
        if value is not None and token != value:
            raise GraphQLError(f"Syntax Error: expected {value!r}, found {token!r}")
        self.at += 1
        return kind, token

    def name(self) -> str:
        kind, token = self.take()
        if kind != "name":
            raise GraphQLError(f"Syntax Error: expected a name, found {token!r}")
        return token

    def document(self) -> dict:
        operations, fragments = [], {}
        while self.peek()[0] != "eof":
            if self.peek("fragment"):
                self.take()
                name = self.name()
                self.take("on")
                condition = self.name()
                self.directives()
                fragments[name] = (condition, self.selection_set())
            elif self.peek("{"):
                operations.append({"name": None, "variables": {}, "selections": self.selection_set()})
            else:
                kind = self.name()
                if kind not in ("query", "mutation", "subscription"):
                    raise GraphQLError(f"Syntax Error: unexpected {kind!r}")
                name = self.name() if self.peek()[0] == "name" else None
                variables = self.variable_definitions() if self.peek("(") else {}
                self.directives()
                operations.append(
                    {"name": name, "kind": kind, "variables": variables, "selections": self.selection_set()}
                )
        return {"operations": operations, "fragments": fragments}

    def variable_definitions(self) -> dict:
        definitions = {}
        self.take("(")
        while not self.peek(")"):
            self.take("$")
            name = self.name()
            self.take(":")
            self.type_ref()
            default = None
            if self.peek("="):
                self.take()
                default = self.value(constant=True)
            self.directives()
            definitions[name] = default
        self.take(")")
        return definitions

    def type_ref(self) -> None:
        if self.peek("["):
            self.take()
            self.type_ref()
            self.take("]")
        else:
            self.name()
        if self.peek("!"):
            self.take()

    def directives(self) -> list:
        found = []
        while self.peek("@"):
            self.take()
            name = self.name()
            found.append((name, self.arguments() if self.peek("(") else {}))
        return found

    def arguments(self) -> dict:
        arguments = {}
        self.take("(")
        while not self.peek(")"):
            name = self.name()
            self.take(":")
            arguments[name] = self.value()
        self.take(")")
        return arguments

    def value(self, constant: bool = False):
        kind, token = self.peek()
        if kind == "punct" and token == "$" and not constant:
            self.take()
            return ("var", self.name())
        if kind == "punct" and token == "[":
            self.take()
            items = []
            while not self.peek("]"):
                items.append(self.value(constant))
            self.take("]")
            return ("list", items)
        if kind == "punct" and token == "{":
            self.take()
            fields = {}
            while not self.peek("}"):
                name = self.name()
                self.take(":")
                fields[name] = self.value(constant)
            self.take("}")
            return ("object", fields)
        self.take()
        if kind == "string":
            return token
        if kind == "number":
            return float(token) if any(c in token for c in ".eE") else int(token)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(token, token)
        raise GraphQLError(f"Syntax Error: unexpected {token!r}")

    def selection_set(self) -> list:
        selections = []
        self.take("{")
        while not self.peek("}"):
            if self.peek("..."):
                self.take()
                if self.peek("on"):
                    self.take()
                    condition = self.name()
                    directives = self.directives()
                    selections.append(("inline", condition, directives, self.selection_set()))
                elif self.peek()[0] == "name":
                    name = self.name()
                    selections.append(("spread", name, self.directives()))
                else:
                    directives = self.directives()
                    selections.append(("inline", None, directives, self.selection_set()))
                continue
            alias = name = self.name()
            if self.peek(":"):
                self.take()
                name = self.name()
            arguments = self.arguments() if self.peek("(") else {}
            directives = self.directives()
            sub = self.selection_set() if self.peek("{") else None
            selections.append(("field", alias, name, arguments, directives, sub))
        self.take("}")
        return selections


def resolve_value(value, variables):
    if isinstance(value, tuple):
        kind, inner = value
        if kind == "var":
            return variables.get(inner)
        if kind == "list":
            return [resolve_value(v, variables) for v in inner]
        if kind == "object":
            return {k: resolve_value(v, variables) for k, v in inner.items()}
    return value


def included(directives, variables) -> bool:
    for name, arguments in directives:
        condition = resolve_value(arguments.get("if"), variables)
        if name == "include" and not condition:
            return False
        if name == "skip" and condition:
            return False
    return True


def type_applies(obj: dict, condition) -> bool:
    if condition is None:
        return True
    return condition == obj.get("__typename") or condition in obj.get("__interfaces", ())


def execute(selections, obj, context) -> dict | None:
    if obj is None:
        return None
    out = {}
    variables = context["variables"]
    for selection in selections:
        if selection[0] == "field":
            _, alias, name, arguments, directives, sub = selection
            if not included(directives, variables):
                continue
            if name == "__typename":
                out[alias] = obj.get("__typename")
                continue
            value = obj.get(name)
            if callable(value):
                value = value({k: resolve_value(v, variables) for k, v in arguments.items()})
            out[alias] = complete(value, sub, context)
        elif selection[0] == "inline":
            _, condition, directives, sub = selection
            if included(directives, variables) and type_applies(obj, condition):
                out.update(execute(sub, obj, context) or {})
        else:
            _, name, directives = selection
            fragment = context["fragments"].get(name)
            if fragment is None:
                raise GraphQLError(f"Unknown fragment {name!r}")
            condition, sub = fragment
            if included(directives, variables) and type_applies(obj, condition):
                out.update(execute(sub, obj, context) or {})
    return out


def complete(value, sub, context):
    if sub is None or value is None:
        return value
    if isinstance(value, list):
        return [complete(item, sub, context) for item in value]
    return execute(sub, value, context)


def connection(items: list, arguments: dict, wrap=None) -> dict:
    first = arguments.get("first") or arguments.get("last") or 100
    page = items[: int(first)]
    return {
        "__typename": "Connection",
        "totalCount": len(items),
        "nodes": page,
        "edges": [{"node": node, "cursor": f"c{i}"} for i, node in enumerate(page)],
        "pageInfo": {"hasNextPage": len(items) > len(page), "endCursor": f"c{len(page)}" if page else None},
    }


def gql_actor(login: str, kind: str = "User") -> dict:
    return {
        "__typename": kind,
        "__interfaces": ("Actor",),
        "login": login,
        "name": login,
        "url": f"https://github.com/{login}",
        "id": f"U_{login}",
    }


def gql_labels(_arguments=None) -> dict:
    return connection([], {})


def gql_comments(full_name: str, number: int):
    def resolve(arguments):
        nodes = []
        for comment in comment_objects(full_name, number):
            login = comment["user"]["login"]
            nodes.append(
                {
                    "__typename": "IssueComment",
                    "__interfaces": ("Comment", "Node"),
                    "id": f"IC_{comment['id']}",
                    "body": comment["body"],
                    "author": gql_actor(login),
                    "authorAssociation": comment["author_association"],
                    "createdAt": comment["created_at"],
                    "url": comment["html_url"],
                    "includesCreatedEdit": False,
                    "isMinimized": False,
                    "minimizedReason": None,
                    "reactionGroups": [],
                    "viewerDidAuthor": False,
                }
            )
        return connection(nodes, arguments)

    return resolve


def gql_repository_ref(full_name: str) -> dict:
    owner, name = full_name.split("/")
    return {
        "__typename": "Repository",
        "name": name,
        "nameWithOwner": full_name,
        "owner": gql_actor(owner, "Organization"),
        "isPrivate": is_private(full_name),
        "url": f"https://github.com/{full_name}",
    }


def gql_issue(full_name: str, number: int) -> dict | None:
    issue = issue_object(full_name, number)
    if issue is None:
        return None
    login, association, kind = AUTHORS[number - 1]
    return {
        "__typename": "Issue",
        "__interfaces": ("Comment", "Node", "SearchResultItem"),
        "id": issue["node_id"],
        "number": number,
        "title": issue["title"],
        "body": issue["body"],
        "url": issue["html_url"],
        "state": "OPEN",
        "stateReason": None,
        "closed": False,
        "createdAt": issue["created_at"],
        "updatedAt": issue["updated_at"],
        "closedAt": None,
        "author": gql_actor(login, kind),
        "authorAssociation": association,
        "labels": gql_labels,
        "assignees": lambda arguments: connection([], arguments),
        "projectCards": lambda arguments: connection([], arguments),
        "projectItems": lambda arguments: connection([], arguments),
        "milestone": None,
        "comments": gql_comments(full_name, number),
        "reactionGroups": [],
        "repository": gql_repository_ref(full_name),
        "isPinned": False,
    }


def gql_pull(full_name: str, number: int) -> dict | None:
    pull = pull_object(full_name, number)
    if pull is None:
        return None
    return {
        "__typename": "PullRequest",
        "__interfaces": ("Comment", "Node", "SearchResultItem"),
        "id": pull["node_id"],
        "number": number,
        "title": pull["title"],
        "body": pull["body"],
        "url": pull["html_url"],
        "state": "MERGED" if pull["merged"] else "OPEN",
        "isDraft": False,
        "merged": pull["merged"],
        "mergedAt": pull["merged_at"],
        "closed": pull["merged"],
        "createdAt": pull["created_at"],
        "updatedAt": pull["updated_at"],
        "headRefName": pull["head"]["ref"],
        "baseRefName": "main",
        "headRepositoryOwner": gql_actor(full_name.split("/")[0], "Organization"),
        "isCrossRepository": False,
        "author": gql_actor(pull["user"]["login"]),
        "authorAssociation": pull["author_association"],
        "labels": gql_labels,
        "assignees": lambda arguments: connection([], arguments),
        "comments": gql_comments(full_name, number),
        "reviewRequests": lambda arguments: connection([], arguments),
        "reviews": lambda arguments: connection([], arguments),
        "statusCheckRollup": lambda arguments: connection([], arguments),
        "repository": gql_repository_ref(full_name),
    }


def gql_repository(arguments: dict) -> dict | None:
    full_name = f"{arguments.get('owner', '')}/{arguments.get('name', '')}".lower()
    if visibility_mode(full_name) in (None, "404"):
        return None
    owner, name = full_name.split("/")

    def issues(args):
        states = args.get("states") or ["OPEN"]
        nodes = [gql_issue(full_name, n) for n in range(1, len(AUTHORS) + 1)]
        return connection([n for n in nodes if n["state"] in states], args)

    def pulls(args):
        states = args.get("states") or ["OPEN", "MERGED", "CLOSED"]
        nodes = [gql_pull(full_name, number) for number, *_ in PULLS]
        return connection([n for n in nodes if n["state"] in states], args)

    def history(args):
        nodes = [
            {
                "__typename": "Commit",
                "oid": c["sha"],
                "messageHeadline": c["commit"]["message"],
                "author": {"name": c["author"]["login"], "user": gql_actor(c["author"]["login"])},
            }
            for c in commit_objects(full_name)
        ]
        return connection(nodes, args)

    return {
        "__typename": "Repository",
        "__interfaces": ("Node",),
        "id": f"R_{full_name}",
        "name": name,
        "nameWithOwner": full_name,
        "owner": gql_actor(owner, "Organization"),
        "description": f"the {full_name} repository",
        "url": f"https://github.com/{full_name}",
        "isPrivate": is_private(full_name),
        "visibility": "PRIVATE" if is_private(full_name) else "PUBLIC",
        "isArchived": False,
        "isFork": False,
        "hasIssuesEnabled": True,
        "viewerPermission": "READ",
        "stargazerCount": 3,
        "defaultBranchRef": {
            "__typename": "Ref",
            "name": "main",
            "target": {"__typename": "Commit", "oid": "1" * 40, "history": history},
        },
        "issues": issues,
        "issue": lambda args: gql_issue(full_name, int(args.get("number") or 0)),
        "issueOrPullRequest": lambda args: gql_issue(full_name, int(args.get("number") or 0))
        or gql_pull(full_name, int(args.get("number") or 0)),
        "pullRequests": pulls,
        "pullRequest": lambda args: gql_pull(full_name, int(args.get("number") or 0)),
        "labels": lambda args: connection([], args),
        "milestones": lambda args: connection([], args),
        "assignableUsers": lambda args: connection([], args),
    }


def gql_search(arguments: dict) -> dict:
    query = str(arguments.get("query") or "")
    repos = [t[5:].lower() for t in query.split() if t.startswith("repo:")] or list(REPOSITORIES)
    nodes = []
    for full_name in repos:
        if visibility_mode(full_name) in (None, "404"):
            continue
        if "is:pr" in query:
            nodes += [gql_pull(full_name, number) for number, *_ in PULLS]
        else:
            nodes += [gql_issue(full_name, n) for n in range(1, len(AUTHORS) + 1)]
    result = connection(nodes, arguments)
    result["issueCount"] = len(nodes)
    return result


TYPE_FIELDS = {
    "Issue": ["id", "number", "title", "body", "url", "state", "stateReason", "closed", "author",
              "authorAssociation", "labels", "assignees", "comments", "milestone", "projectCards",
              "projectItems", "reactionGroups", "createdAt", "updatedAt", "closedAt", "isPinned"],
    "PullRequest": ["id", "number", "title", "body", "url", "state", "isDraft", "merged", "mergedAt",
                    "author", "authorAssociation", "labels", "assignees", "comments", "reviews",
                    "reviewRequests", "statusCheckRollup", "headRefName", "baseRefName",
                    "createdAt", "updatedAt", "projectCards", "projectItems", "autoMergeRequest"],
    "Repository": ["id", "name", "nameWithOwner", "owner", "description", "url", "isPrivate",
                   "visibility", "hasIssuesEnabled", "viewerPermission", "defaultBranchRef",
                   "issues", "pullRequests", "stargazerCount", "isArchived", "isFork"],
    "Commit": ["oid", "messageHeadline", "author", "history"],
}


def gql_type(arguments: dict) -> dict | None:
    name = arguments.get("name")
    fields = TYPE_FIELDS.get(name)
    if fields is None:
        return None
    return {
        "__typename": "__Type",
        "name": name,
        "kind": "OBJECT",
        "fields": lambda _args: [{"__typename": "__Field", "name": f} for f in fields],
    }


def gql_root() -> dict:
    return {
        "__typename": "Query",
        "repository": gql_repository,
        "viewer": {**gql_actor(VIEWER["login"]), "name": VIEWER["name"]},
        "search": gql_search,
        "organization": lambda args: {"__typename": "Organization", "login": args.get("login"), "name": args.get("login")},
        "__type": gql_type,
        "__schema": {
            "__typename": "__Schema",
            "queryType": {"name": "Query"},
            "types": [{"__typename": "__Type", "name": n, "kind": "OBJECT"} for n in TYPE_FIELDS],
        },
    }


def run_graphql(body: dict) -> tuple[int, dict]:
    query = body.get("query")
    if not isinstance(query, str) or not query:
        return 200, {"errors": [{"message": "A query attribute must be specified and must be a string."}]}
    try:
        document = Parser(query).document()
        operations = document["operations"]
        name = body.get("operationName")
        operation = next((o for o in operations if o["name"] == name), None) if name else None
        operation = operation or (operations[0] if operations else None)
        if operation is None:
            raise GraphQLError("No operation")
        variables = {k: v for k, v in operation["variables"].items() if v is not None}
        variables.update(body.get("variables") or {})
        context = {"variables": variables, "fragments": document["fragments"]}
        if operation.get("kind") == "mutation":
            return 200, {"data": None, "errors": [{"message": "mutations are not supported by the mock"}]}
        data = execute(operation["selections"], gql_root(), context)
    except GraphQLError as error:
        return 200, {"errors": [{"message": str(error)}]}
    result = {"data": data}
    if isinstance(data, dict) and "repository" in data and data["repository"] is None:
        result["errors"] = [{"type": "NOT_FOUND", "path": ["repository"], "message": "Could not resolve to a Repository."}]
    return 200, result


# ---------------------------------------------------------------------------
# REST
# ---------------------------------------------------------------------------

REPO = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"


def paginate(items: list, query: dict, path: str) -> tuple[list, dict]:
    per_page = int(query.get("per_page", ["30"])[0] or 30)
    page = int(query.get("page", ["1"])[0] or 1)
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    headers = {}
    last = max(1, -(-len(items) // per_page))
    if page < last:
        headers["Link"] = (
            f'<{API}{path}?per_page={per_page}&page={page + 1}>; rel="next", '
            f'<{API}{path}?per_page={per_page}&page={last}>; rel="last"'
        )
    return chunk, headers


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-github/1.0"

    def log_message(self, *args) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without TCP_NODELAY the second
        # waits for the client's delayed ACK (about 40 ms).
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    # -- plumbing -----------------------------------------------------------

    def send(self, status: int, body, headers: dict | None = None, content_type: str = "application/json; charset=utf-8") -> None:
        if isinstance(body, (bytes, bytearray)):
            data = bytes(body)
        elif body is None:
            data = b""
        else:
            data = json.dumps(body).encode()
        self.send_response(status)
        all_headers = {
            "X-GitHub-Request-Id": f"MOCK:{id(self):x}",
            "X-RateLimit-Limit": "5000",
            "X-RateLimit-Remaining": "4999",
            "X-RateLimit-Reset": str(int(time.time()) + 3600),
            "X-RateLimit-Used": "1",
            "X-RateLimit-Resource": "core",
            "X-Mock-Private-Header": "not-for-clients",
        }
        if status != 204:
            all_headers["Content-Type"] = content_type
        all_headers.update(headers or {})
        all_headers["Content-Length"] = str(len(data))
        for name, value in all_headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and data:
            self.wfile.write(data)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self.dispatch()

    def do_POST(self) -> None:
        self.dispatch()

    def do_PUT(self) -> None:
        self.dispatch()

    def do_PATCH(self) -> None:
        self.dispatch()

    def do_DELETE(self) -> None:
        self.dispatch()

    def do_HEAD(self) -> None:
        self.dispatch()

    def dispatch(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        path = parsed.path
        body = self.read_body()
        if path.startswith("/_mock/"):
            self.control(path, body)
            return
        record = {
            "method": self.command,
            "path": path,
            "query": parsed.query,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body.decode("utf-8", "replace"),
        }
        with STATE.lock:
            STATE.requests.append(record)
            faults = list(STATE.faults)
        for fault in faults:
            if fault.get("method") and fault["method"] != self.command:
                continue
            if not re.search(fault["path"], path):
                continue
            times = fault.get("times")
            if times is not None:
                if times <= 0:
                    continue
                fault["times"] = times - 1
            self.fault(fault)
            return
        if path.startswith("/api/v3/"):
            path = path[len("/api/v3"):]
        try:
            self.route(path, urllib.parse.parse_qs(parsed.query), body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def fault(self, fault: dict) -> None:
        mode = str(fault.get("mode", "500"))
        if mode == "hang":
            time.sleep(float(fault.get("seconds", 600)))
            self.send(504, {"message": "mock hang ended"})
        elif mode == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        elif mode == "429":
            self.send(429, {"message": "API rate limit exceeded"}, {"X-RateLimit-Remaining": "0"})
        else:
            self.send(int(mode), {"message": f"mock fault {mode}"})

    def control(self, path: str, body: bytes) -> None:
        payload = json.loads(body or b"{}")
        if path == "/_mock/requests":
            if self.command == "DELETE":
                with STATE.lock:
                    STATE.requests = []
                self.send(200, {"cleared": True})
            else:
                with STATE.lock:
                    self.send(200, list(STATE.requests))
        elif path == "/_mock/faults" and self.command == "POST":
            with STATE.lock:
                STATE.faults = [dict(f) for f in payload.get("faults", [])]
            self.send(200, {"faults": len(STATE.faults)})
        elif path == "/_mock/visibility" and self.command == "POST":
            with STATE.lock:
                STATE.visibility = {k.lower(): v for k, v in payload.items()} if payload else {}
            self.send(200, {"visibility": STATE.visibility})
        elif path == "/_mock/reset" and self.command == "POST":
            STATE.reset()
            self.send(200, {"reset": True})
        else:
            self.send(404, {"message": "unknown control endpoint"})

    # -- routes -------------------------------------------------------------

    def route(self, path: str, query: dict, body: bytes) -> None:
        method = self.command
        if path in ("/graphql", "/api/graphql") and method == "POST":
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                self.send(400, {"message": "Problems parsing JSON"})
                return
            status, result = run_graphql(request if isinstance(request, dict) else {})
            self.send(status, result)
            return
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            self.write(path, body)
            return
        if method not in ("GET", "HEAD"):
            self.send(405, {"message": "method not allowed"})
            return
        simple = {
            "/user": lambda: {**user(VIEWER["login"]), "name": VIEWER["name"]},
            "/meta": lambda: {"verifiable_password_authentication": True, "installed_version": "3.12.0"},
            "/rate_limit": lambda: {"resources": {"core": {"limit": 5000, "remaining": 4999}}},
            "/zen": lambda: "Keep it logically awesome.",
            "/octocat": lambda: "*meow*",
            "/versions": lambda: ["2022-11-28"],
            "/notifications": lambda: [],
            "/v1/unknown/endpoint": lambda: {"status": "ok"},
            "/": lambda: {"current_user_url": f"{API}/user"},
        }
        if path in simple:
            self.send(200, simple[path]())
            return
        if path == "/search/repositories":
            self.search_repositories(query)
            return
        if path == "/search/issues":
            self.search_issues(query)
            return
        if path == "/search/code":
            self.search_code(query)
            return
        match = re.fullmatch(REPO + r"(?P<rest>/.*)?", path)
        if match is None:
            self.send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
            return
        full_name = f"{match['owner']}/{match['repo']}".lower()
        rest = match["rest"] or ""
        mode = visibility_mode(full_name)
        if rest == "":
            self.repository(full_name, mode)
            return
        if mode in (None, "404"):
            self.send(404, {"message": "Not Found"})
            return
        self.repo_route(full_name, rest, query, path)

    def repository(self, full_name: str, mode: str | None) -> None:
        if mode is None or mode == "404":
            self.send(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository"})
        elif mode == "500":
            self.send(500, {"message": "Server Error"})
        elif mode == "hang":
            time.sleep(600)
            self.send(504, {"message": "mock hang ended"})
        else:
            self.send(200, repo_object(full_name, mode == "private"))

    def repo_route(self, full_name: str, rest: str, query: dict, path: str) -> None:
        issue_count = len(AUTHORS)
        if rest == "/issues":
            issues = [issue_object(full_name, n) for n in range(1, issue_count + 1)]
            chunk, headers = paginate(issues, query, path)
            self.send(200, chunk, headers)
            return
        match = re.fullmatch(r"/issues/(\d+)(/comments|/labels)?", rest)
        if match:
            number = int(match[1])
            issue = issue_object(full_name, number)
            if issue is None:
                self.send(404, {"message": "Not Found"})
            elif match[2] == "/comments":
                self.send(200, comment_objects(full_name, number))
            elif match[2] == "/labels":
                self.send(200, [])
            else:
                self.send(200, issue)
            return
        if rest == "/pulls":
            pulls = [pull_object(full_name, number) for number, *_ in PULLS]
            chunk, headers = paginate(pulls, query, path)
            self.send(200, chunk, headers)
            return
        match = re.fullmatch(r"/pulls/(\d+)(/\w+)?", rest)
        if match:
            pull = pull_object(full_name, int(match[1]))
            if pull is None:
                self.send(404, {"message": "Not Found"})
            elif match[2] in ("/comments", "/reviews"):
                self.send(200, comment_objects(full_name, int(match[1])))
            elif match[2] == "/files":
                self.send(200, [{"filename": "README.md", "status": "modified", "additions": 1}])
            else:
                self.send(200, pull)
            return
        if rest == "/commits":
            self.send(200, commit_objects(full_name))
            return
        match = re.fullmatch(r"/commits/([^/]+)", rest)
        if match:
            commits = {c["sha"]: c for c in commit_objects(full_name)}
            commit = commits.get(match[1]) or {**commit_objects(full_name)[0], "sha": match[1]}
            self.send(200, commit)
            return
        match = re.fullmatch(r"/contents/(.+)", rest)
        if match:
            self.send(200, {"type": "file", "name": match[1].split("/")[-1], "path": match[1],
                            "content": "aGVsbG8K", "encoding": "base64",
                            "html_url": f"https://github.com/{full_name}/blob/main/{match[1]}"})
            return
        if rest in ("/branches", "/tags", "/releases", "/labels"):
            self.send(200, [{"name": "main"}])
            return
        match = re.fullmatch(r"/actions/runs/(\d+)/logs", rest)
        if match:
            size = int(query.get("size", ["1024"])[0])
            block = bytes(range(256))
            data = (block * (size // 256 + 1))[:size]
            self.send(200, data, {"Content-Disposition": "attachment; filename=logs.zip"}, content_type="application/zip")
            return
        match = re.fullmatch(r"/collaborators/([^/]+)/permission", rest)
        if match:
            login = urllib.parse.unquote(match[1])
            association = next((a for l, a, _ in AUTHORS if l == login), "NONE")
            permission = {"OWNER": "admin", "MEMBER": "write", "COLLABORATOR": "write"}.get(association, "read")
            self.send(200, {"permission": permission, "user": user(login)})
            return
        self.send(404, {"message": "Not Found"})

    def search_repositories(self, query: dict) -> None:
        q = query.get("q", [""])[0]
        names = [t[5:].lower() for t in q.split() if t.startswith("repo:")] or list(REPOSITORIES)
        items = []
        for full_name in names:
            mode = visibility_mode(full_name)
            if mode == "500":
                self.send(500, {"message": "Server Error"})
                return
            if mode == "hang":
                time.sleep(600)
                self.send(504, {"message": "mock hang ended"})
                return
            if mode in ("public", "private"):
                items.append(repo_object(full_name, mode == "private"))
        self.send(200, {"total_count": len(items), "incomplete_results": False, "items": items})

    def search_issues(self, query: dict) -> None:
        q = query.get("q", [""])[0]
        names = [t[5:].lower() for t in q.split() if t.startswith("repo:")] or list(REPOSITORIES)
        items = []
        for full_name in names:
            if visibility_mode(full_name) in (None, "404"):
                continue
            items += [issue_object(full_name, n) for n in range(1, len(AUTHORS) + 1)]
        self.send(200, {"total_count": len(items), "incomplete_results": False, "items": items})

    def search_code(self, query: dict) -> None:
        q = query.get("q", [""])[0]
        names = [t[5:].lower() for t in q.split() if t.startswith("repo:")] or list(REPOSITORIES)
        items = [
            {"name": "README.md", "path": "README.md", "repository": repo_object(n, is_private(n))}
            for n in names
            if visibility_mode(n) in ("public", "private")
        ]
        self.send(200, {"total_count": len(items), "incomplete_results": False, "items": items})

    def write(self, path: str, body: bytes) -> None:
        try:
            payload = json.loads(body) if body else {}
        except ValueError:
            self.send(400, {"message": "Problems parsing JSON"})
            return
        if self.command == "DELETE":
            self.send(204, None)
            return
        with STATE.lock:
            STATE.created += 1
            created = STATE.created
        status = 201 if self.command == "POST" else 200
        self.send(status, {"id": 90000 + created, "number": 900 + created, "path": path,
                           "method": self.command, "received": payload},
                  {"Location": f"{API}{path}/{900 + created}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    print(f"MOCK_GITHUB_PORT={server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
