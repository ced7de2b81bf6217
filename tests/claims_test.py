#!/usr/bin/env python3
"""kernel/check-claims: prose that quotes a result no output shows fails, and
the committed notebooks pass. Run by `make test`."""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

root = Path(__file__).resolve().parent.parent
checker = root / "kernel" / "check-claims"
from checks import check, summary  # noqa: E402


def notebook(markdown, outputs, tags=()):
    md = {"cell_type": "markdown", "id": "m", "metadata": {"tags": list(tags)} if tags else {}, "source": markdown}
    code = {"cell_type": "code", "id": "c", "execution_count": 1, "metadata": {}, "source": "x",
            "outputs": [{"output_type": "stream", "name": "stdout", "text": outputs[0]}]
            + [{"output_type": "display_data", "metadata": {}, "data": {"text/html": h}} for h in outputs[1:]]}
    return {"cells": [code, md], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def run(tmp, name, nb):
    p = Path(tmp) / f"{name}.ipynb"
    p.write_text(json.dumps(nb))
    return subprocess.run([sys.executable, str(checker), str(p)], capture_output=True, text=True)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        r = run(tmp, "good", notebook("SimCLR reaches 85.5 %, +12.5 points over random init, 3.0 pp above MoCo.",
                                      ["accuracy 0.8553\n", "<td>+12.5 ± 1.0</td><td>3.04</td>"]))
        check(r.returncode == 0 and "3 of 3 quoted results found" in r.stdout,
              "results printed as fractions, in HTML or rounded are found", r.stdout + r.stderr)
        r = run(tmp, "bad", notebook("From scratch reaches 69.6 % with twice the steps.", ["accuracy 0.491\n"]))
        check(r.returncode == 1 and "bad.ipynb: cell 1: '69.6 %'" in r.stdout and "0 of 1" in r.stdout,
              "a quoted result that no output shows fails, naming notebook, cell and text", r.stdout + r.stderr)
        r = run(tmp, "svg", notebook("It reaches 85.6 %.", ["x\n", '<svg><rect x="85.6" width="0.856"/><text>12.0 %</text></svg>']))
        check(r.returncode == 1 and "'85.6 %'" in r.stdout, "coordinates and sizes in a figure are not results", r.stdout)
        r = run(tmp, "svgtext", notebook("It reaches 12.0 %.", ["x\n", '<svg><rect x="85.6"/><text>12.0 %</text></svg>']))
        check(r.returncode == 0, "a figure's visible text counts", r.stdout)
        r = run(tmp, "near", notebook("It reaches 85.6 %.", ["accuracy 0.8553\n"]))
        check(r.returncode == 1, "a number off by more than its rounding is not found", r.stdout)
        r = run(tmp, "external", notebook("solo-learn's SimCLR reaches 90.7 % on CIFAR-10.", ["nothing\n"], tags=["external"]))
        check(r.returncode == 0 and "0 of 0" in r.stdout, "a markdown cell tagged external is skipped", r.stdout)
        r = run(tmp, "code", notebook("Set `ratio = 75.0 %` and $p = 12.5\\%$ then run.", ["nothing\n"]))
        check(r.returncode == 0, "inline code and math are not claims", r.stdout)
        r = subprocess.run([sys.executable, str(checker), str(Path(tmp) / "missing.ipynb")], capture_output=True, text=True)
        check(r.returncode != 0 and "missing.ipynb: no such notebook" in r.stderr, "a missing notebook is named", r.stderr)
    r = subprocess.run([sys.executable, str(checker), str(root / "notebooks")], capture_output=True, text=True)
    check(r.returncode == 0, "every committed notebook quotes only results its outputs show", r.stdout[-3000:])
    return summary("claims")


if __name__ == "__main__":
    sys.exit(main())
