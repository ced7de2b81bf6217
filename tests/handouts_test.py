#!/usr/bin/env python3
"""The handouts in a real browser, and JupyterLab driving the Rust (sslab) kernel.

Run by `make test`. Needs Chromium (kernel/setup-browser installs Debian's);
without it the test says so and passes, unless SSLAB_REQUIRE_BROWSER=1 (set by
CI), which makes a missing Chromium a failure.

1. Unit checks of kernel/handouts.py: escaped dollars, the student edition.
2. The page checker itself fails on a page with each kind of defect.
3. Every committed notebook exported in both editions (HTML and PDF), each
   HTML page opened in headless Chromium: no console error, no network
   request, every figure decoded with a non-zero size, math typeset (no `$`
   or KaTeX error left), no raw kernel markers, and no solution text in the
   student edition (while the instructor edition has it). Each PDF is a PDF
   with pages.
4. `kernel/run-notebooks --export` executes a notebook with the kernel and
   exports it.
5. JupyterLab: start the server, open a notebook in the browser, run a cell
   with the Rust (sslab) kernel and read its output; then a long training
   cell shows live progress, the toolbar's stop button ends it within about
   a second at a step boundary, and the next cell finds every variable.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "kernel"))
import handouts  # noqa: E402
import spare_kernel  # noqa: E402
from checks import check, free_port, stop, summary  # noqa: E402

import nbformat  # noqa: E402

PY = sys.executable
MAX_STREAM_LINES = 40


# ---------------------------------------------------------------- 1. units


def unit_checks():
    p = handouts.protect_dollars
    d = handouts.DOLLAR
    check(p(r"costs \$1 a day") == f"costs {d}1 a day", "an escaped dollar in prose becomes a literal dollar")
    check(p(r"$$x = \$1$$") == r"$$x = \$1$$", "an escaped dollar inside display math is left to the typesetter")
    check(p(r"$a$ and \$2 and $b$") == f"$a$ and {d}2 and $b$", "inline math around an escaped dollar is untouched")
    check(p(r"`a\$b` \$") == f"`a\\$b` {d}", "code spans are left alone")

    nb = nbformat.read(root / "tests" / "notebooks" / "handout.ipynb", as_version=4)
    student = handouts.student_edition(nb)
    sol = [c for c in nb.cells if handouts.is_solution(c)]
    ex = [c for c in student.cells if "exercise" in c.metadata.get("tags", [])]
    check(len([c for c in sol if c.cell_type == "code"]) == 2 and len(ex) == 1
          and not any(handouts.is_solution(c) for c in student.cells),
          "the student edition replaces each solution code cell by an exercise cell")
    check(any(c.cell_type == "markdown" for c in sol) and len(student.cells) == len(nb.cells) - 2
          and not any("1764" in "".join(c.source) for c in student.cells),
          "the student edition leaves out markdown solution cells and the answer key")
    check(not any("answer key" in "".join(c.source) for c in student.cells), "the student edition has no answer-key cell")
    check(ex and ex[0].source == "// Exercise 1: your solution here.\n" and ex[0].outputs == [],
          "the exercise cell keeps the exercise number and has no output", repr(ex[0].source if ex else None))
    check(len(nb.cells) == 6 and sum(handouts.is_solution(c) for c in nb.cells) == 3,
          "the student edition leaves the original notebook as it was")


# ---------------------------------------------------------------- the page checker

PAGE_FACTS = r"""() => {
  const figures = [];
  document.querySelectorAll('.jp-OutputArea-output img, .jp-OutputArea-output svg').forEach(el => {
    if (el.closest('svg') && el.closest('svg') !== el) return;  // nested svg: its outer one counts
    const r = el.getBoundingClientRect();
    const decoded = el.tagName.toLowerCase() === 'img' ? (el.complete && el.naturalWidth > 0 && el.naturalHeight > 0) : true;
    figures.push({tag: el.tagName.toLowerCase(), w: r.width, h: r.height, decoded});
  });
  const leftover = [];
  document.querySelectorAll('.jp-MarkdownOutput').forEach(md => {
    const c = md.cloneNode(true);
    c.querySelectorAll('.katex, .sslab-dollar, code, pre').forEach(x => x.remove());
    const t = c.textContent;
    if (/\$|\\\(|\\\[|\\frac|\\mathcal/.test(t)) leftover.push(t.slice(Math.max(0, t.search(/\$|\\/) - 40), t.search(/\$|\\/) + 40));
  });
  return {
    figures,
    katex: document.querySelectorAll('.katex').length,
    katexErrors: Array.from(document.querySelectorAll('.katex-error')).map(e => e.textContent),
    leftover,
    text: document.body.innerText,
  };
}"""


def page_problems(page, url, *, need_math, need_figures, forbidden=(), required=()):
    """Opens `url` in `page` and returns the list of what is wrong with it."""
    problems, console, requests = [], [], []

    def on_console(msg):
        if msg.type == "error":
            console.append(msg.text)

    def on_request(req):
        if not (req.url == url or req.url.startswith("data:")):
            requests.append(req.url)

    page.on("console", on_console)
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    page.on("request", on_request)
    try:
        page.goto(url, wait_until="load")
        page.evaluate("document.fonts.ready.then(() => true)")
        facts = page.evaluate(PAGE_FACTS)
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("request", on_request)
    if console:
        problems.append(f"console errors: {console[:3]}")
    if requests:
        problems.append(f"network requests: {requests[:3]}")
    bad = [f for f in facts["figures"] if not f["decoded"] or f["w"] < 1 or f["h"] < 1]
    if bad:
        problems.append(f"{len(bad)} of {len(facts['figures'])} figures not decoded or of zero size: {bad[:2]}")
    if need_figures and not facts["figures"]:
        problems.append("no figures")
    if need_math and facts["katex"] == 0:
        problems.append("no typeset math")
    if facts["katexErrors"]:
        problems.append(f"math that KaTeX could not typeset: {facts['katexErrors'][:3]}")
    if facts["leftover"]:
        problems.append(f"untypeset math left in the text: {facts['leftover'][:2]}")
    for marker in ("EVCXR_BEGIN_CONTENT", "EVCXR_END_CONTENT", "\x1b["):
        if marker in facts["text"]:
            problems.append(f"raw kernel output {marker!r} in the page")
    text = " ".join(facts["text"].split())
    leaked = [s for s in forbidden if " ".join(s.split()) in text]
    if leaked:
        problems.append(f"{len(leaked)} solution lines in the page, e.g. {leaked[0]!r}")
    missing = [s for s in required if " ".join(s.split()) not in text]
    if missing:
        problems.append(f"{len(missing)} expected lines missing, e.g. {missing[0]!r}")
    return problems


BAD_PAGE = """<!DOCTYPE html><html><head><meta charset=utf-8></head><body>
<div class="jp-MarkdownOutput"><p>Untypeset: $$x^2$$</p></div>
<div class="jp-OutputArea-output"><img src="http://192.0.2.1/figure.png" width=10 height=10></div>
<div class="jp-OutputArea-output"><img src="data:image/png;base64,AAAA"></div>
<pre>EVCXR_BEGIN_CONTENT text/html</pre>
<p>let secret = 42;</p>
<script>console.error("boom")</script>
</body></html>"""


def checker_checks(page, tmp):
    bad = Path(tmp) / "bad.html"
    bad.write_text(BAD_PAGE)
    problems = page_problems(page, bad.as_uri(), need_math=True, need_figures=True, forbidden=["let secret = 42;"])
    text = "\n".join(problems)
    for kind in ("console errors", "network requests", "figures not decoded", "no typeset math",
                 "untypeset math", "EVCXR_BEGIN_CONTENT", "solution lines"):
        check(kind in text, f"the page checker catches {kind} on a broken page", text)


# ---------------------------------------------------------------- 3. the course's handouts


def handout_checks(page, out):
    notebooks = handouts.collect([root / "notebooks"])
    t0 = time.time()
    r = subprocess.run([PY, str(root / "kernel" / "handouts.py"), "--out", str(out), str(root / "notebooks")],
                       capture_output=True, text=True)
    check(r.returncode == 0, f"kernel/handouts.py exports {len(notebooks)} notebooks ({time.time() - t0:.0f} s)", r.stdout + r.stderr)
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        chapter, name = path.parent.name, path.stem
        # Training progress ends as one line or a table: no cell prints a wall of text into a handout.
        longest = max((sum("".join(o.get("text", "")).count("\n") for o in c.get("outputs", []) if o.get("output_type") == "stream"), i)
                      for i, c in enumerate(nb.cells) if c.cell_type == "code")
        check(longest[0] <= MAX_STREAM_LINES, f"{chapter}/{name}: at most {MAX_STREAM_LINES} printed lines per cell (most: {longest[0]})",
              f"cell {longest[1]} prints {longest[0]} lines")
        solutions = handouts.solution_lines(nb)
        md_solution_ids = [c.id for c in nb.cells if c.cell_type == "markdown" and handouts.is_solution(c)]
        has_math = any(c.cell_type == "markdown" and "$" in "".join(c.source) for c in nb.cells)
        for edition in handouts.EDITIONS:
            html_path = out / edition / chapter / f"{name}.html"
            pdf_path = out / edition / chapter / f"{name}.pdf"
            if not html_path.is_file():
                check(False, f"{edition}/{chapter}/{name}.html exists")
                continue
            problems = page_problems(
                page, html_path.as_uri(), need_math=has_math, need_figures=True,
                forbidden=solutions if edition == "student" else (),
                required=solutions if edition == "instructor" else (),
            )
            present = page.evaluate("ids => ids.filter(id => document.getElementById('cell-id=' + id))", md_solution_ids)
            if edition == "student" and present:
                problems.append(f"markdown solution cells {present} in the student edition")
            if edition == "instructor" and len(present) != len(md_solution_ids):
                problems.append(f"markdown solution cells missing: {sorted(set(md_solution_ids) - set(present))}")
            check(not problems, f"{edition}/{chapter}/{name}.html in Chromium"
                  + (f" ({len(solutions)} solution lines {'absent' if edition == 'student' else 'present'})" if solutions else ""),
                  "; ".join(problems))
            check(edition != "student" or bool(solutions), f"{chapter}/{name} has a solution cell to hide")
            pdf = pdf_path.read_bytes() if pdf_path.is_file() else b""
            pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
            check(pdf.startswith(b"%PDF-") and pages >= 1, f"{edition}/{chapter}/{name}.pdf: {pages} pages")
    for index in ("index.html", "student/index.html", "instructor/index.html"):
        p = out / index
        ok = p.is_file()
        problems = page_problems(page, p.as_uri(), need_math=False, need_figures=False) if ok else ["missing"]
        links = page.evaluate("Array.from(document.querySelectorAll('a')).map(a => a.getAttribute('href'))") if ok else []
        dead = [h for h in links if not (p.parent / h).is_file()]
        want = len(notebooks) * 2 * (2 if index == "index.html" else 1)
        check(ok and not problems and not dead and len(links) == want,
              f"{index} links {len(links)} handouts (want {want}), none dead", f"{problems} dead {dead[:3]}")
    student_index = (out / "student" / "index.html").read_text() if (out / "student" / "index.html").is_file() else ""
    check("instructor" not in student_index.split("<footer>")[0], "the student index does not link the instructor edition")


# ---------------------------------------------------------------- 4. execute and export


def run_export_checks(page, out):
    nb_path = root / "tests" / "notebooks" / "handout.ipynb"
    r = subprocess.run([PY, str(root / "kernel" / "run-notebooks"), "--profile", "smoke", "--export", str(out), str(nb_path)],
                       capture_output=True, text=True)
    check(r.returncode == 0 and "handouts: 4 files for 1 notebooks" in r.stdout,
          "kernel/run-notebooks --export executes a notebook and writes both editions", r.stdout[-800:] + r.stderr[-800:])
    student = out / "student" / "notebooks" / "handout.html"
    instructor = out / "instructor" / "notebooks" / "handout.html"
    if student.is_file() and instructor.is_file():
        problems = page_problems(page, instructor.as_uri(), need_math=True, need_figures=False,
                                 required=["the answer is 42", "answer squared = 1764", "The square of the answer is 1764",
                                           "answer key: question 1 is forty-two"])
        check(not problems, "the executed instructor handout shows the cell outputs and the solution's output", "; ".join(problems))
        problems = page_problems(page, student.as_uri(), need_math=True, need_figures=False,
                                 required=["the answer is 42", "Exercise 1: your solution here."],
                                 forbidden=["answer squared = 1764", "answer * answer", "The square of the answer", "answer key"])
        check(not problems, "the executed student handout hides the solution and its output", "; ".join(problems))
        page.goto(student.as_uri())
        price = page.evaluate("Array.from(document.querySelectorAll('.jp-MarkdownOutput p')).map(p => p.textContent).join(' | ')")
        check("a price of $3 that is not math" in price, "an escaped dollar prints as a dollar sign", price)
    bad = subprocess.run([PY, str(root / "kernel" / "run-notebooks"), "--export", str(out), "--editions", "teacher", str(nb_path)],
                         capture_output=True, text=True)
    check(bad.returncode != 0 and "unknown edition teacher" in bad.stderr, "an unknown edition is refused before any notebook runs",
          bad.stdout + bad.stderr)


# ---------------------------------------------------------------- 5. JupyterLab


STOP_STEPS = 2000


def stop_button_notebook(path):
    """A notebook whose third cell trains long enough to be stopped."""
    cells = [
        f':dep sslab = {{ path = "{root / "crate"}" }}',
        "use sslab::prelude::*;\n"
        "let dev = sslab::device::device()?;\n"
        "let (train, _) = sslab::data::load_images(\"shapes\", 600, 0)?;\n"
        f"let mut run = Pretrainer::new(PretrainConfig {{ steps: {STOP_STEPS}, batch_size: 16, warmup_steps: 0, "
        "..PretrainConfig::for_method(MethodName::SimClr) }, train.image_shape()?, &dev.device)?;\n"
        "let marker = 42;\n"
        'println!("ready");',
        f"run.train_for({STOP_STEPS}, &train)?;\nprintln!(\"cell went on\");",
        'println!("steps {} marker {}", run.history().len(), marker);',
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "rust-sslab", "display_name": "Rust (sslab)", "language": "rust"}
    nbformat.write(nb, path)


# Selectors name the notebook in view, `.jp-NotebookPanel:not(.lm-mod-hidden)`:
# JupyterLab keeps the notebooks opened before (the workspace is the
# server's) as hidden panels.


def lab_checks(browser, tmp):
    work = Path(tmp) / "lab"
    work.mkdir()
    shutil.copy(root / "tests" / "notebooks" / "handout.ipynb", work / "handout.ipynb")
    stop_button_notebook(work / "stop.ipynb")
    port, token = free_port(), "sslab-test-token"
    log = open(Path(tmp) / "lab.log", "w")
    # with the kernel manager kernel/lab gives JupyterLab (its warm spare kernel)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(Path(tmp) / "jupyter-config"), PYTHONPATH=str(root / "kernel"))
    server = subprocess.Popen(
        [str(Path(PY).parent / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}", "--allow-root",
         "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=False",
         spare_kernel.SERVER_OPTION],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        else:
            check(False, "JupyterLab server starts", (Path(tmp) / "lab.log").read_text()[-800:])
            return
        context = browser.new_context()
        # Everything but the local server is refused: the test must not depend on the network.
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(base) else route.abort())
        try:
            page = open_notebook(context, base, token, "handout.ipynb")
            cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").first
            run_cell(page, 0)
            out = cell.locator(".jp-OutputArea-output")
            check("the answer is 42" in out.first.inner_text(), "a cell run in the browser prints its output from the Rust kernel",
                  out.first.inner_text())
            page.close()
        except Exception as e:  # a time-out names what it waited for
            check(False, "JupyterLab runs a cell in the browser", f"{type(e).__name__}: {str(e)[:600]}")
        try:
            stop_button_checks(open_notebook(context, base, token, "stop.ipynb"))
        except Exception as e:
            check(False, "the stop button in JupyterLab", f"{type(e).__name__}: {str(e)[:600]}")
        context.close()
    finally:
        stop(server, timeout=20)
        log.close()


def open_notebook(context, base, token, name):
    """Opens `name` in JupyterLab and waits until its Rust (sslab) kernel is idle."""
    page = context.new_page()
    page.set_viewport_size({"width": 1280, "height": 1600})
    page.set_default_timeout(300_000)
    # a workspace of its own, reset: only this notebook open
    page.goto(f"{base}/lab/workspaces/{Path(name).stem}/tree/{name}?reset&token={token}")
    page.wait_for_selector(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")
    # The kernel is started and idle once the toolbar names it and the indicator says so.
    page.wait_for_function("""() => {
        const name = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar .jp-Toolbar-kernelName');
        const status = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator') ?? document.querySelector('.jp-Notebook-ExecutionIndicator');
        return name && name.innerText.includes('Rust (sslab)') && status && status.getAttribute('data-status') === 'idle';
    }""")
    kernel_name = page.inner_text(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar .jp-Toolbar-kernelName")
    check("Rust (sslab)" in kernel_name, f"JupyterLab opens {name} with the Rust (sslab) kernel, which starts", kernel_name)
    return page


def cell_text(page, i):
    return page.evaluate(f"() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[{i}]"
                         "?.querySelector('.jp-OutputArea')?.innerText ?? ''")


def cell_done(page, i):
    """Whether cell `i` has run and is not running now (its prompt holds a number)."""
    prompt = page.evaluate(f"() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[{i}]"
                           "?.querySelector('.jp-InputArea-prompt')?.innerText ?? ''")
    return re.search(r"\[\d+\]", prompt) is not None


def run_cell(page, i, wait=True):
    """Clicks into cell `i`'s editor and runs it with the toolbar's ▶
    button, as a student would; with `wait`, until it has finished."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").nth(i).locator(".cm-content").click()
    page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar [data-jp-item-name="run"]').first.click()
    if wait:
        page.wait_for_function(f"""() => /\\[\\d+\\]/.test(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell')[{i}]
            ?.querySelector('.jp-InputArea-prompt')?.innerText ?? '')""")


def stop_button_checks(page):
    """A long training cell shows live progress; the toolbar's stop button
    ends it at a step boundary within about a second; the variables live on."""
    run_cell(page, 0)
    run_cell(page, 1)
    check("ready" in cell_text(page, 1), "the setup cells run in the browser", cell_text(page, 1)[-400:])
    run_cell(page, 2, wait=False)
    t0 = time.time()
    seen = []
    while time.time() - t0 < 240 and not cell_done(page, 2):
        lines = [l for l in cell_text(page, 2).splitlines() if l.startswith(handouts.PROGRESS_MARK)]
        if len(lines) > len(seen):
            seen = lines
        if len(seen) >= 3:
            break
        time.sleep(0.2)
    check(len(seen) >= 3 and not cell_done(page, 2),
          f"a long training cell shows live progress in the browser ({len(seen)} updates after {time.time() - t0:.0f} s)", "\n".join(seen))
    page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-NotebookPanel-toolbar [data-jp-item-name="interrupt"]').first.click()
    pressed = time.time()
    while time.time() - pressed < 30 and not cell_done(page, 2):
        time.sleep(0.05)
    took = time.time() - pressed
    text = cell_text(page, 2)
    check(cell_done(page, 2) and took < 2.0, f"the stop button ends the cell within about a second ({took:.2f} s)", text[-400:])
    check("stopped by the interrupt after" in text and "cell went on" in text and "Error" not in text,
          "the stopped cell says where it stopped and ends without an error", text[-600:])
    run_cell(page, 3)
    text = cell_text(page, 3)
    m = re.search(r"steps (\d+) marker 42", text)
    check(m is not None and 0 < int(m.group(1)) < STOP_STEPS,
          f"after the stop the session's variables are intact (the run has {m.group(1) if m else '?'} of {STOP_STEPS} steps)", text)
    page.close()


def main():
    unit_checks()
    if handouts.find_chromium() is None:
        msg = "Chromium not found: the browser checks of the handouts and JupyterLab are skipped (kernel/setup-browser installs it)"
        if os.environ.get("SSLAB_REQUIRE_BROWSER") == "1":
            check(False, msg)
        else:
            print(f"skip {msg}")
    else:
        from playwright.sync_api import sync_playwright

        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
            browser = handouts.launch_browser(p)
            context = browser.new_context()
            page = context.new_page()
            page.set_default_timeout(60_000)
            checker_checks(page, tmp)
            out = root / "target" / "handouts-test"
            shutil.rmtree(out, ignore_errors=True)
            handout_checks(page, out)
            run_export_checks(page, Path(tmp) / "executed")
            context.close()
            lab_checks(browser, tmp)
            browser.close()
    return summary("handout")


if __name__ == "__main__":
    sys.exit(main())
