#!/usr/bin/env python3
"""Course handouts: notebooks to self-contained HTML and PDF, student and instructor editions.

    kernel/handouts.py [--out handouts] [--editions student,instructor] [--formats html,pdf] NOTEBOOK|DIR ...
    kernel/handouts.py --install-katex      (kernel/setup runs this once)

This exports notebooks with the outputs they have. To execute them fresh first,
use `kernel/run-notebooks --export DIR` (what `make handouts` runs).

Layout of the output folder:

    handouts/index.html                       both editions, every chapter
    handouts/<edition>/index.html             one edition (hand out this folder)
    handouts/<edition>/<chapter>/<name>.html  self-contained: figures, styles and math inline
    handouts/<edition>/<chapter>/<name>.pdf   printed from that HTML by headless Chromium

The `student` edition replaces every code cell tagged `solution` by an empty
exercise cell, dropping its outputs, and leaves out markdown cells tagged
`solution` (what a solution shows) and every cell tagged `answer-key` (a
quiz's answers); `instructor` keeps everything and marks the solution cells. Math is typeset in the page by KaTeX, which kernel/setup
fetches once from the npm registry into .venv; no file is loaded from the
network when a handout is opened or printed.
"""
import argparse
import base64
import copy
import datetime
import hashlib
import html
import io
import json
import os
import re
import shutil
import sys
import tarfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KATEX_VERSION = "0.19.1"
KATEX_INTEGRITY = "sha512-jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA=="
KATEX_DIR = ROOT / ".venv" / "share" / "sslab" / f"katex-{KATEX_VERSION}"
TEMPLATES = Path(__file__).resolve().parent / "templates"
EDITIONS = ("student", "instructor")
FORMATS = ("html", "pdf")
CHAPTERS = {
    "ch24": "Chapter 24 · Self-supervised learning",
    "ch25": "Chapter 25 · Contrastive learning and its successors",
}
COURSE = "sslab · self-supervised learning, hands-on"


class HandoutError(Exception):
    """A problem the user can fix (a missing tool, a bad option); printed without a traceback."""


# ---------------------------------------------------------------- KaTeX


def install_katex(dest=KATEX_DIR):
    """Downloads KaTeX's npm package once, checks its sha512 against the pinned value, keeps dist/."""
    if (dest / "katex.min.js").is_file():
        return dest
    url = f"https://registry.npmjs.org/katex/-/katex-{KATEX_VERSION}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            blob = r.read()
    except OSError as e:
        raise HandoutError(f"could not download KaTeX {KATEX_VERSION} from {url}: {e}") from None
    digest = "sha512-" + base64.b64encode(hashlib.sha512(blob).digest()).decode()
    if digest != KATEX_INTEGRITY:
        raise HandoutError(f"KaTeX tarball from {url} has {digest}, expected {KATEX_INTEGRITY}")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "fonts").mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for m in tar.getmembers():
            name = m.name.removeprefix("package/dist/")
            if name in ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js") or (
                name.startswith("fonts/") and name.endswith(".woff2")
            ):
                data = tar.extractfile(m).read()
                (tmp / Path(name).name if name.startswith("contrib/") else tmp / name).write_bytes(data)
            elif m.name == "package/LICENSE":
                (tmp / "LICENSE").write_bytes(tar.extractfile(m).read())
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest


def katex_assets(katex_dir=KATEX_DIR):
    """KaTeX's CSS with every font inlined as a data: URL, its script and auto-render, as strings."""
    if not (katex_dir / "katex.min.js").is_file():
        raise HandoutError(f"KaTeX is not installed in {katex_dir}: run kernel/setup (or kernel/handouts.py --install-katex)")
    css = (katex_dir / "katex.min.css").read_text()

    def inline_font(m):
        font = m.group(1)
        data = base64.b64encode((katex_dir / "fonts" / font).read_bytes()).decode()
        return f'url(data:font/woff2;base64,{data}) format("woff2")'

    # Keep only the woff2 source of each @font-face, inlined.
    css = re.sub(r'url\(fonts/([\w-]+\.woff2)\) format\("woff2"\)(,url\(fonts/[\w.-]+\) format\("[\w]+"\))*', inline_font, css)
    if "url(fonts/" in css:
        raise HandoutError("KaTeX's CSS references a font file that was not inlined (unexpected KaTeX version?)")
    return {
        "css": css,
        "js": (katex_dir / "katex.min.js").read_text(),
        "autorender": (katex_dir / "auto-render.min.js").read_text(),
    }


# ---------------------------------------------------------------- progress lines

# The first characters of a progress line printed by a training call in the
# kernel (sslab::train::MARK); the call ends with one summary line, unmarked.
PROGRESS_MARK = "\u22ef "


def drop_progress(nb):
    """Removes the live-progress lines of training calls from `nb`'s stream outputs, in place, and
    drops stream outputs left empty: a saved notebook or a handout keeps each call's summary line only."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                text = "".join(o.get("text", ""))
                lines = [l for l in text.splitlines(keepends=True) if not l.startswith(PROGRESS_MARK)]
                if not lines:
                    continue
                o["text"] = "".join(lines)
            kept.append(o)
        cell["outputs"] = kept
    return nb


# ---------------------------------------------------------------- editions


def is_solution(cell):
    """A cell the student edition must not show: tagged `solution` or `answer-key`."""
    tags = cell.get("metadata", {}).get("tags", [])
    return "solution" in tags or "answer-key" in tags


def is_answer_key(cell):
    return "answer-key" in cell.get("metadata", {}).get("tags", [])


def student_edition(nb):
    """A copy of `nb` for students: `solution` code cells become empty exercise cells without outputs,
    and `solution` markdown cells (what a solution shows) and `answer-key` cells are left out."""
    import nbformat

    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if not (is_solution(c) and (c.cell_type == "markdown" or is_answer_key(c)))]
    count = 0
    for i, cell in enumerate(nb.cells):
        if not is_solution(cell):
            continue
        count += 1
        m = re.search(r"Exercise\s+(\d+)", "".join(cell.source))
        number = m.group(1) if m else str(count)
        nb.cells[i] = nbformat.v4.new_code_cell(
            source=f"// Exercise {number}: your solution here.\n",
            metadata={"tags": ["exercise"]},
        )
    return nb


def solution_lines(nb, min_len=12):
    """Distinctive lines of the solution cells (source and printed output): what a student edition must not contain.

    A line that also appears in a cell that is not a solution (a loop header
    copied from an earlier cell, say) is not distinctive and is left out.
    """

    def texts(cell):
        yield "".join(cell.source)
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream":
                yield "".join(o.get("text", ""))

    def lines(cells):
        return [l.strip() for c in cells for t in texts(c) for l in t.splitlines()]

    elsewhere = set(lines(c for c in nb.cells if not is_solution(c)))
    return [
        l for l in lines(c for c in nb.cells if is_solution(c) and c.cell_type == "code")
        if len(l) >= min_len and not l.startswith("// Exercise") and l not in elsewhere
    ]


# ---------------------------------------------------------------- HTML

DOLLAR = '<span class="sslab-dollar">&#36;</span>'


def protect_dollars(md):
    """Markdown with each escaped dollar outside math (`\\$1`) made a literal dollar sign.

    Jupyter shows `\\$` as `$`; nbconvert's markdown turns it into a bare `$`
    that the math typesetter would pair with the next one. Outside math and
    code spans it becomes a `$` in its own element, which math never spans;
    inside `$…$`, `$$…$$` and code it is left alone.
    """
    out, i, n = [], 0, len(md)
    math = None  # None, "$" or "$$"
    while i < n:
        c = md[i]
        if c == "\\" and i + 1 < n:
            if md[i + 1] == "$" and math is None:
                out.append(DOLLAR)
            else:
                out.append(md[i : i + 2])
            i += 2
        elif c == "`" and math is None:
            ticks = len(md[i:]) - len(md[i:].lstrip("`"))
            end = md.find("`" * ticks, i + ticks)
            end = n if end < 0 else end + ticks
            out.append(md[i:end])
            i = end
        elif c == "$":
            delim = "$$" if md.startswith("$$", i) else "$"
            if math is None:
                math = delim
            elif math == delim:
                math = None
            out.append(delim)
            i += len(delim)
        else:
            out.append(c)
            i += 1
    return "".join(out)



def title_of(nb, fallback):
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", "".join(cell.source), re.M)
            if m:
                return m.group(1).strip()
    return fallback


def chapter_title(chapter):
    return CHAPTERS.get(chapter, chapter)


def to_html(nb, edition, chapter, name, katex=None):
    """The notebook as one self-contained HTML page in the given edition."""
    from nbconvert import HTMLExporter

    if edition not in EDITIONS:
        raise HandoutError(f"unknown edition {edition!r}: choose from {', '.join(EDITIONS)}")
    nb = student_edition(nb) if edition == "student" else copy.deepcopy(nb)
    drop_progress(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = protect_dollars("".join(cell.source))
    exporter = HTMLExporter(template_name="sslab-handout", extra_template_basedirs=[str(TEMPLATES)])
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    title = title_of(nb, name)
    resources = {
        "metadata": {"name": title},
        "sslab": {
            "katex": katex or katex_assets(),
            "edition": edition,
            "chapter": chapter_title(chapter),
            "course": COURSE,
            "date": datetime.date.today().isoformat(),
        },
    }
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    return body


# ---------------------------------------------------------------- PDF


def find_chromium():
    for cand in (os.environ.get("SSLAB_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


# Chromium's flags for a closed machine: no background connections, no sandbox as root.
CHROMIUM_ARGS = [
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def require_chromium():
    chromium = find_chromium()
    if chromium is None:
        raise HandoutError(
            "Chromium not found (needed for PDF handouts and the browser test): install Debian's `chromium` "
            "(kernel/setup-browser does it) or set SSLAB_CHROMIUM to a Chrome or Chromium binary"
        )
    return chromium


def launch_browser(playwright):
    """Debian's (or the given) Chromium, headless, through Playwright."""
    chromium = require_chromium()
    args = CHROMIUM_ARGS + (["--no-sandbox"] if os.geteuid() == 0 else [])
    return playwright.chromium.launch(executable_path=chromium, args=args, headless=True)


FOOTER = (
    '<div style="font-size:8px;width:100%;padding:0 16mm;color:#777;display:flex;justify-content:space-between;'
    'font-family:sans-serif"><span>{left}</span><span><span class="pageNumber"></span> / <span class="totalPages"></span></span></div>'
)


def print_pdfs(jobs):
    """Prints each (html_path, pdf_path, footer_text) with headless Chromium, writing through a temporary file."""
    if not jobs:
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise HandoutError("the Python package playwright is missing from .venv: run kernel/setup") from None
    with sync_playwright() as p:
        browser = launch_browser(p)
        try:
            page = browser.new_page()
            page.emulate_media(media="print")
            for html_path, pdf_path, footer in jobs:
                page.goto(Path(html_path).resolve().as_uri(), wait_until="load")
                page.evaluate("document.fonts.ready.then(() => { if (window.sslabFitMath) sslabFitMath(); return true; })")
                tmp = Path(str(pdf_path) + ".tmp")
                page.pdf(
                    path=str(tmp),
                    format="A4",
                    print_background=True,
                    display_header_footer=True,
                    header_template="<span></span>",
                    footer_template=FOOTER.format(left=html.escape(footer)),
                    margin={"top": "16mm", "bottom": "18mm", "left": "14mm", "right": "14mm"},
                )
                os.replace(tmp, pdf_path)
        finally:
            browser.close()


# ---------------------------------------------------------------- export and index


def chapter_of(path):
    return Path(path).resolve().parent.name


def export(notebooks, out, editions=EDITIONS, formats=FORMATS, profile=None):
    """Writes the handouts of [(path, executed nb)] into `out` and refreshes the index pages.

    Returns the list of files written. HTML and PDF are each written to a
    temporary file and renamed, so an interrupted export leaves no half file.
    """
    for e in editions:
        if e not in EDITIONS:
            raise HandoutError(f"unknown edition {e!r}: choose from {', '.join(EDITIONS)}")
    for f in formats:
        if f not in FORMATS:
            raise HandoutError(f"unknown format {f!r}: choose from {', '.join(FORMATS)}")
    if "pdf" in formats:
        require_chromium()  # fails with the explanation before any work is done
    out = Path(out)
    katex = katex_assets()
    written, jobs = [], []
    manifest = load_manifest(out)
    for path, nb in notebooks:
        chapter, name = chapter_of(path), Path(path).stem
        title = title_of(nb, name)
        for edition in editions:
            folder = out / edition / chapter
            folder.mkdir(parents=True, exist_ok=True)
            page = folder / f"{name}.html"
            write_atomic(page, to_html(nb, edition, chapter, name, katex))
            written.append(page)
            if "pdf" in formats:
                jobs.append((page, folder / f"{name}.pdf", f"{title} · {edition} edition"))
                written.append(folder / f"{name}.pdf")
            manifest[f"{chapter}/{name}"] = {
                "chapter": chapter,
                "name": name,
                "title": title,
                "profile": profile or "outputs as saved in the notebook",
                "date": datetime.date.today().isoformat(),
            }
    print_pdfs(jobs)
    if "html" not in formats:
        for page, _, _ in jobs:
            page.unlink()
        written = [w for w in written if w.suffix != ".html"]
    save_manifest(out, manifest)
    write_index(out, manifest)
    return written


def write_atomic(path, text):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_manifest(out):
    try:
        return json.loads((Path(out) / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def save_manifest(out, manifest):
    Path(out).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(out) / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")


INDEX_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1.5rem;color:#222;line-height:1.5}
h1{font-size:2rem;margin-bottom:.2rem} .sub{color:#666;margin-top:0} h2{margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%} td{padding:.35rem .5rem;border-bottom:1px solid #eee;vertical-align:top}
td.links{white-space:nowrap;text-align:right} a{color:#1a5fb4;text-decoration:none} a:hover{text-decoration:underline}
.ed{color:#888;font-size:.85em} footer{margin-top:3rem;color:#888;font-size:.85em}
"""


def write_index(out, manifest):
    """handouts/index.html (both editions) and handouts/<edition>/index.html (one edition)."""
    out = Path(out)
    by_chapter = {}
    for key in sorted(manifest):
        by_chapter.setdefault(manifest[key]["chapter"], []).append(manifest[key])

    def page(editions, prefix):
        rows = []
        for chapter, entries in by_chapter.items():
            rows.append(f"<h2>{html.escape(chapter_title(chapter))}</h2><table>")
            for e in entries:
                links = []
                for ed in editions:
                    base = f"{prefix(ed)}{chapter}/{e['name']}"
                    have = [f for f in FORMATS if (out / ed / chapter / f"{e['name']}.{f}").is_file()]
                    if not have:
                        continue
                    label = f'<span class="ed">{ed}</span> ' if len(editions) > 1 else ""
                    links.append(label + " · ".join(f'<a href="{base}.{f}">{f.upper()}</a>' for f in have))
                rows.append(f"<tr><td>{html.escape(e['title'])}</td><td class=links>{'<br>'.join(links)}</td></tr>")
            rows.append("</table>")
        edition_note = (
            "Both editions: the <em>student</em> edition leaves the exercise cells empty, the <em>instructor</em> edition keeps the solutions."
            if len(editions) > 1
            else f"{editions[0].capitalize()} edition."
        )
        profiles = sorted({e["profile"] for e in manifest.values()})
        return (
            f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{COURSE}: handouts</title>"
            f"<style>{INDEX_CSS}</style></head><body><h1>Self-supervised learning</h1>"
            f"<p class=sub>{COURSE}: course handouts. {edition_note}</p>{''.join(rows)}"
            f"<footer>Each handout is a notebook of the course run through the Rust (sslab) kernel "
            f"(profile: {html.escape(', '.join(profiles))}) and exported on {datetime.date.today().isoformat()}.</footer></body></html>\n"
        )

    write_atomic(out / "index.html", page(list(EDITIONS), lambda ed: f"{ed}/"))
    for ed in EDITIONS:
        if (out / ed).is_dir():
            write_atomic(out / ed / "index.html", page([ed], lambda _ed: ""))


def collect(paths):
    out = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(q for q in p.rglob("*.ipynb") if ".ipynb_checkpoints" not in q.parts)
        elif p.suffix == ".ipynb" and p.is_file():
            out.append(p)
        else:
            raise HandoutError(f"{p} is not a notebook or a folder")
    if not out:
        raise HandoutError(f"no notebooks found in {', '.join(map(str, paths))}")
    return out


def split_list(text, allowed, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad or not items:
        raise HandoutError(f"unknown {what} {', '.join(bad) or repr(text)}: choose from {', '.join(allowed)}")
    return items


def main(argv=None):
    import nbformat

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", help="notebooks or folders of notebooks (their outputs are exported as they are)")
    ap.add_argument("--out", default="handouts", help="output folder (default handouts)")
    ap.add_argument("--editions", default="student,instructor", help="comma-separated: student, instructor")
    ap.add_argument("--formats", default="html,pdf", help="comma-separated: html, pdf")
    ap.add_argument("--install-katex", action="store_true", help="fetch KaTeX into .venv (kernel/setup does this)")
    args = ap.parse_args(argv)
    try:
        if args.install_katex:
            print(f"KaTeX {KATEX_VERSION} in {install_katex()}")
            if not args.paths:
                return 0
        if not args.paths:
            ap.error("give notebooks or folders to export")
        editions = split_list(args.editions, EDITIONS, "edition")
        formats = split_list(args.formats, FORMATS, "format")
        notebooks = [(p, nbformat.read(p, as_version=4)) for p in collect(args.paths)]
        written = export(notebooks, args.out, editions, formats)
    except HandoutError as e:
        print(f"handouts: {e}", file=sys.stderr)
        return 2
    print(f"handouts: {len(written)} files in {args.out}/ (index: {Path(args.out) / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
