"""HTML pages: one head (title, the stylesheet) for every page grokscope writes (the analysis
report, a sweep's, a reproduction's, a comparison's), and the small Markdown-to-HTML the pages
written as Markdown first are shown with."""

from __future__ import annotations

import html
import re

CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45;"
       "overflow-wrap:anywhere}img{max-width:100%;height:auto}table{border-collapse:collapse}"
       "td,th{border:1px solid #ccc;padding:2px 6px}code{background:#f4f4f4}"
       ".src{color:#555;font-size:90%}"
       ".live{background:#fff4d6;border:1px solid #e0b000;padding:.5em 1em}")
TAIL = "</body></html>"


def head(title: str, refresh: int | None = None) -> str:
    """Everything before the body's content; `refresh`: the browser reloads the page every so
    many seconds (a live report)."""
    reload = f"<meta http-equiv='refresh' content='{int(refresh)}'>" if refresh else ""
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>" + reload +
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>")


def page(title: str, body: str) -> str:
    return head(title) + body + TAIL + "\n"


def from_markdown(md: str, title: str) -> str:
    """A page from Markdown's headings, paragraphs, tables and images (what the reports use)."""
    body, table = [], []
    for line in md.splitlines() + [""]:
        if line.startswith("|"):
            if not set(line) <= set("|-"):
                table.append(line.strip("|").split("|"))
            continue
        if table:
            top, *rest = table
            body.append("<table><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in top) + "</tr>" +
                        "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                                for r in rest) + "</table>")
            table = []
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif m := re.match(r"!\[(.*)\]\((.*)\)", line):
            body.append(f'<p><img src="{m.group(2)}" alt="{html.escape(m.group(1))}" style="max-width:100%"></p>')
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    return page(title, "".join(body))
