"""Render a benchmark report as markdown and JSON, both headed by the machine line.

A report is a dict every sub-benchmark builds the same way::

    {"machine_line": str, "machine": {...}, "suite": str, "title": str,
     "command": str, "settings": {...}, "notes": [str, ...],
     "tables": [{"title": str, "columns": [str, ...], "rows": [[str, ...], ...]}, ...],
     ...numeric results...}

``tables`` holds the formatted cells for markdown; JSON gets everything else
(the numbers, unformatted).
"""

import json
import os
import tempfile


def to_markdown(report):
    lines = [f"# {report['title']}", "", f"Machine: {report['machine_line']}", "",
             f"Command: `{report['command']}`", ""]
    for note in report.get("notes", []):
        lines.append(f"- {note}")
    for table in report.get("tables", []):
        lines += ["", f"## {table['title']}", "",
                  "| " + " | ".join(table["columns"]) + " |",
                  "|" + "|".join("---" for _ in table["columns"]) + "|"]
        lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def to_json(report):
    data = {key: value for key, value in report.items() if key != "tables"}
    return json.dumps(data, indent=1, default=float) + "\n"


def write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
