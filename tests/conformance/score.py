"""Scores one run of the MCP conformance suite in server mode from the
results directory it wrote (`-o DIR`: one `server-<scenario>-<time>/`
folder with a `checks.json` per scenario).

usage: score.py DIR EXPECTED LABEL [TALLY]

A scenario passes when none of its checks is a FAILURE (the suite's own
rule; WARNING checks are reported, not failed). Prints one line
`LABEL: P/EXPECTED scenarios passed (W warnings)` and, for each failing
scenario, its failed checks; exits 0 only when all EXPECTED scenarios ran
and passed. With TALLY, appends `<passed> <failed>` scenario counts to
that file (scenarios missing from the run count as failed)."""

import json
import pathlib
import re
import sys


def main() -> int:
    directory, expected, label = pathlib.Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    scenarios: dict[str, list[dict]] = {}
    for checks_file in sorted(directory.glob("server-*/checks.json")):
        name = re.sub(r"-\d{4}-\d{2}-\d{2}T[\d-]+Z$", "", checks_file.parent.name)
        name = name.removeprefix("server-")
        scenarios[name] = json.loads(checks_file.read_text())
    failed = {
        name: [check for check in checks if check.get("status") == "FAILURE"]
        for name, checks in scenarios.items()
    }
    failed = {name: checks for name, checks in failed.items() if checks}
    warnings = sum(
        1 for checks in scenarios.values() for check in checks if check.get("status") == "WARNING"
    )
    passed = len(scenarios) - len(failed)
    print(f"{label}: {passed}/{expected} scenarios passed ({warnings} warnings)")
    for name, checks in sorted(failed.items()):
        for check in checks:
            message = check.get("errorMessage") or check.get("description", "")
            print(f"  FAILED {name}: {check.get('name')}: {message}")
    if len(scenarios) != expected:
        print(f"  expected {expected} scenarios, the suite ran {len(scenarios)}")
    if len(sys.argv) > 4:
        with open(sys.argv[4], "a") as tally:
            tally.write(f"{passed} {max(expected, len(scenarios)) - passed}\n")
    return 0 if passed == expected and len(scenarios) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
