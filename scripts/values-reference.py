#!/usr/bin/env python3
"""The values reference: reads the `# --` comments of the chart's values.yaml
and writes deploy/helm/sluice/VALUES.md (key, default, meaning).

Every key must be documented: by its own `# --` comment, or, for the parts of
a block documented as a whole (an image, resources, the requests and limits
inside them), by that block's. A key without a description fails `--check`
(make test runs it), as does a stale VALUES.md.
"""
import json
import pathlib
import re
import sys

CHART = pathlib.Path(__file__).resolve().parent.parent / "deploy/helm/sluice"
# Blocks documented as a whole: their keys need no comment of their own.
WHOLE = {"image", "resources", "requests", "limits", "thresholds"}

KEY = re.compile(r"^(\s*)([A-Za-z0-9_.\-]+|\"[^\"]+\"):(.*)$")


def parse(text):
    """(path, default text, description, documented by a block) per key."""
    out, stack, comment = [], [], []
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            comment = []
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            if body.startswith("--"):
                comment = [body[2:].strip()]
            elif comment:
                comment.append(body)
            continue
        if stripped.startswith("- ") or stripped == "-":
            # List items are described by their list's key.
            indent = len(line) - len(line.lstrip())
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, "__list__"))
            comment = []
            continue
        m = KEY.match(line)
        if not m:
            comment = []
            continue
        indent, key, rest = len(m.group(1)), m.group(2).strip('"'), m.group(3).strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if any(k == "__list__" for _, k in stack):
            continue
        parents = [k for _, k in stack]
        path = ".".join(parents + [key])
        whole = any(p in WHOLE for p in parents)
        out.append((path, rest, " ".join(comment), whole, indent))
        stack.append((indent, key))
        if rest == "" or rest.startswith("#"):
            pass
        comment = []
    return out


def main():
    text = (CHART / "values.yaml").read_text()
    rows = parse(text)
    # A service's block has serviceDefaults' shape: a key it sets without a
    # comment of its own means what the same key of serviceDefaults means.
    described = {p: d for p, _, d, _, _ in rows if d}
    filled = []
    for path, default, desc, whole, indent in rows:
        parts = path.split(".")
        if not desc and len(parts) > 2 and parts[0] == "services":
            desc = described.get(".".join(["serviceDefaults"] + parts[2:]), "")
        filled.append((path, default, desc, whole, indent))
    rows = filled
    missing = [p for p, _, desc, whole, _ in rows if not desc and not whole]
    lines = [
        "# Values reference",
        "",
        "Generated from the comments of [values.yaml](values.yaml) by",
        "`scripts/values-reference.py` (`make schema`); every key is documented there.",
        "The per-environment files override a few: [values-dev.yaml](values-dev.yaml),",
        "[values-staging.yaml](values-staging.yaml), [values-prod.yaml](values-prod.yaml).",
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for path, default, desc, whole, _ in rows:
        if whole and not desc:
            continue
        shown = default if default else "(block)"
        shown = shown.replace("|", "\\|")
        lines.append(f"| `{path}` | `{shown}` | {desc.replace('|', '/')} |")
    doc = "\n".join(lines) + "\n"
    out = CHART / "VALUES.md"
    if "--check" in sys.argv[1:]:
        problems = []
        if missing:
            problems.append("keys without a `# --` description in values.yaml: " + ", ".join(missing))
        if not out.exists() or out.read_text() != doc:
            problems.append("VALUES.md is stale: run `make schema`")
        if problems:
            print("\n".join(problems))
            sys.exit(1)
        return
    if missing:
        print("keys without a description (add a `# --` comment): " + ", ".join(missing))
        sys.exit(1)
    out.write_text(doc)


if __name__ == "__main__":
    main()
