"""A report people read in a browser: one self-contained ``report.html``.

Everything is inside the one file: images are inlined as ``data:`` URIs, the table sorter is
a few lines of inline JavaScript, and nothing is fetched from the network, so the file can be
mailed, archived or opened on a cart with no connection.  ``btseg-bench --out`` and
``btseg-demo`` write it next to their Markdown report.

Example::

    from btseg.bench.html import HtmlReport

    page = HtmlReport("btseg-bench")
    page.heading("Artifacts")
    page.table(["model", "Dice"], [["student", "0.9512"]])
    page.image("bench-out/bench.png", "Dice vs latency")
    page.write("bench-out/report.html")
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from btseg.errors import DataError
from btseg.io import atomic_write

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;max-width:1400px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0 1rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right;white-space:nowrap}
th{background:#f3f3f3;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:" \\25B2"}th[aria-sort=descending]::after{content:" \\25BC"}
td.l,th.l{text-align:left}tr.failed td{color:#b00}tr.skipped td{color:#a60}
figure{display:inline-block;margin:.5rem;vertical-align:top;max-width:420px}
figure img{max-width:100%;border:1px solid #ccc}figcaption{font-size:.8rem}
img.plot{max-width:100%}p.note{font-size:.85rem;color:#555}
"""

# click a header to sort by it (numbers as numbers, "-" last); click again to reverse
_SORTER = """
document.querySelectorAll("table.sortable").forEach(function(t){
  t.querySelectorAll("th").forEach(function(th,i){
    th.addEventListener("click",function(){
      var asc=th.getAttribute("aria-sort")!=="ascending";
      t.querySelectorAll("th").forEach(function(h){h.removeAttribute("aria-sort")});
      th.setAttribute("aria-sort",asc?"ascending":"descending");
      var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      function key(r){var s=r.cells[i].textContent.trim(),n=parseFloat(s);
        return isNaN(n)?[1,s]:[0,n]}
      rows.sort(function(a,b){var x=key(a),y=key(b);
        if(x[0]!==y[0])return x[0]-y[0];
        var c=x[1]<y[1]?-1:x[1]>y[1]?1:0;return asc?c:-c});
      rows.forEach(function(r){body.appendChild(r)});
    });
  });
});
"""

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}


def data_uri(path: str | Path) -> str:
    """``data:`` URI of an image file (PNG, JPEG, SVG), so the page needs no other file."""
    p = Path(path)
    mime = _MIME.get(p.suffix.lower())
    if mime is None:
        raise DataError(f"{p}: cannot inline a {p.suffix or 'suffix-less'} file, expected one of {', '.join(_MIME)}")
    try:
        payload = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot read the image to inline ({e.strerror or e})") from e
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


@dataclass
class HtmlReport:
    """A page built block by block; :meth:`write` saves it atomically as one file."""

    title: str
    parts: list[str] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def para(self, text: str, note: bool = False) -> None:
        cls = ' class="note"' if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def table(self, head: Sequence[str], rows: Iterable[Sequence[object]], left: Iterable[str] = (),
              row_class: Sequence[str] | None = None) -> None:
        """A sortable table; columns named in ``left`` are left-aligned (text columns)."""
        left = set(left)
        cls = ["l" if h in left else "" for h in head]
        out = ['<table class="sortable"><thead><tr>']
        out += [f'<th class="{c}" title="sort by {html.escape(h)}">{html.escape(h)}</th>' for h, c in zip(head, cls)]
        out.append("</tr></thead><tbody>")
        for k, row in enumerate(rows):
            rc = f' class="{html.escape(row_class[k])}"' if row_class else ""
            out.append(f"<tr{rc}>" + "".join(f'<td class="{c}">{html.escape(str(v))}</td>'
                                             for v, c in zip(row, cls)) + "</tr>")
        out.append("</tbody></table>")
        self.parts.append("".join(out))

    def image(self, path: str | Path, alt: str) -> None:
        self.parts.append(f'<img class="plot" alt="{html.escape(alt)}" src="{data_uri(path)}">')

    def gallery(self, items: Iterable[tuple[str | Path, str]]) -> None:
        """Images with captions, side by side (e.g. per-case overlays)."""
        figs = [f'<figure><img alt="{html.escape(cap)}" src="{data_uri(p)}"><figcaption>{html.escape(cap)}'
                f"</figcaption></figure>" for p, cap in items]
        self.parts.append("<div>" + "".join(figs) + "</div>")

    def render(self) -> str:
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>"
                f"<h1>{html.escape(self.title)}</h1>" + "\n".join(self.parts)
                + f"<script>{_SORTER}</script></body></html>\n")

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        with atomic_write(p) as f:
            f.write(self.render())
        return p
