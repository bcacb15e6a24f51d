"""A self-contained HTML report: every figure embedded as a PNG data URI, tables and checks inline."""

from __future__ import annotations

import base64
import html
import time
from typing import Sequence

from ..experiments import ExperimentResult

__all__ = ["render_report"]

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1d2433;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em} h2{border-bottom:2px solid #e3e7ef;padding-bottom:.2em;margin-top:2em}
h3{margin:1.4em 0 .3em}
.meta{color:#5b6478;font-size:.9em} .summary{background:#f5f7fb;border-left:4px solid #4a6ee0;padding:.6em 1em}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.4em 0 .8em;font-size:.88em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d9dee8;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eef1f7} th.num,td.num{text-align:right;white-space:nowrap}
.pass{color:#0a7a32;font-weight:600} .fail{color:#b3261e;font-weight:600}
figure{margin:1em 0} img{display:block;max-width:100%;height:auto;border:1px solid #e3e7ef}
figcaption{color:#5b6478;font-size:.85em;margin-top:.3em}
nav{display:flex;flex-wrap:wrap;gap:.3em 1.2em} details{margin:.5em 0} summary{cursor:pointer}
code{background:#f0f2f7;padding:0 .25em;border-radius:3px}
"""


def _is_number(cell) -> bool:
    try:
        float(str(cell).replace("\u2212", "-"))
    except ValueError:
        return False
    return True


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A titled table; columns whose cells are all numbers (or a dash) are right-aligned, text is left-aligned."""
    ncol = max([len(header)] + [len(r) for r in rows])
    numeric = [any(_is_number(r[j]) for r in rows if j < len(r))
               and all(_is_number(r[j]) or str(r[j]).strip() in ("", "\u2014", "-") for r in rows if j < len(r))
               for j in range(ncol)]

    def cell(tag: str, j: int, value) -> str:
        text = html.escape(str(value))
        classes = ["num"] if numeric[j] else []
        if tag == "td" and str(value) in ("pass", "FAIL"):
            classes.append("pass" if value == "pass" else "fail")
        cls = f' class="{" ".join(classes)}"' if classes else ""
        return f"<{tag}{cls}>{text}</{tag}>"

    head = "".join(cell("th", j, h) for j, h in enumerate(header))
    body = "".join("<tr>" + "".join(cell("td", j, c) for j, c in enumerate(row)) + "</tr>" for row in rows)
    return (f'<h3>{html.escape(title)}</h3><div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _section(res: ExperimentResult) -> str:
    verdict = '<span class="pass">all checks pass</span>' if res.passed else '<span class="fail">checks fail</span>'
    parts = [f'<h2 id="{html.escape(res.name)}">{html.escape(res.title)}</h2>',
             f'<p class="meta">experiment <code>{html.escape(res.name)}</code> · {res.wall_time_s:.1f} s · {verdict}</p>',
             f'<p class="summary">{html.escape(res.summary)}</p>']
    for fig in res.figures:
        data = base64.b64encode(fig.png).decode()
        caption = html.escape(fig.title) if not fig.caption or fig.caption == fig.title else \
            f"<strong>{html.escape(fig.title)}.</strong> {html.escape(fig.caption)}"
        parts.append(f'<figure><img alt="{html.escape(fig.title)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{caption}</figcaption></figure>")
    if res.checks:
        rows = [(c.name, f"{c.statistic:.4g}", c.threshold, "pass" if c.passed else "FAIL", c.detail)
                for c in res.checks]
        parts.append(_table("Checks (theory vs experiment)",
                            ("check", "statistic", "criterion", "verdict", "detail"), rows))
    for t in res.tables:
        parts.append(_table(t.title, t.header, t.rows))
    cfg = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>" for k, v in res.config.items())
    parts.append(f'<details><summary>configuration</summary><div class="scroll"><table>{cfg}</table></div>'
                 "</details>")
    return "\n".join(parts)


def render_report(results: Sequence[ExperimentResult], environment: dict[str, str]) -> str:
    """The HTML page for a list of experiment results."""
    n_fail = sum(not r.passed for r in results)
    status = ('<span class="pass">every check passes</span>' if n_fail == 0
              else f'<span class="fail">{n_fail} experiment(s) with failing checks</span>')
    nav = "".join(f'<a href="#{html.escape(r.name)}">{html.escape(r.title)}</a>' for r in results)
    env = " · ".join(f"{html.escape(k)} {html.escape(v)}" for k, v in environment.items() if k != "platform")
    body = "\n".join(_section(r) for r in results)
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>nnft report</title>"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{_CSS}</style></head>"
            f"<body><h1>nnft report: neural networks as field theories</h1>"
            f"<p class=\"meta\">{time.strftime('%Y-%m-%d %H:%M')} · {env}</p><p>{status}. Theory (predicted) and "
            f"experiment (measured on sampled networks, ± standard errors) on the same inputs.</p>"
            f"<nav>{nav}</nav>{body}</body></html>\n")
