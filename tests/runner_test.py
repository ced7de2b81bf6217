#!/usr/bin/env python3
"""The notebook runner's own tests: it must fail on each kind of broken notebook
(compile error, panic, `Err` through `?`, kernel death), naming the notebook,
the cell and the message, and pass a healthy one.

Run by `make test`; needs the "Rust (sslab)" kernel (kernel/setup).
"""
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
runner = root / "kernel" / "run-notebooks"
cases = root / "tests" / "notebooks"

# notebook -> (expected exit code, strings the report must contain)
EXPECT = {
    "ok.ipynb": (0, ["✓ ", "notebooks: 1 passed, 0 failed"]),
    "compile_error.ipynb": (1, ["compile_error.ipynb: code cell 2: compile or runtime error", "mismatched types"]),
    "panic.ipynb": (1, ["panic.ipynb: code cell 2: panic", "index out of bounds"]),
    "err_question_mark.ipynb": (1, ["err_question_mark.ipynb: code cell 2: error on stderr", "invalid digit found in string"]),
    "kernel_death.ipynb": (1, ["kernel_death.ipynb: code cell 2: kernel death"]),
}


def late_stdout_is_kept():
    """A cell's stdout line that arrives after the cell finished lands in that cell's output."""
    import importlib.machinery
    import importlib.util
    import nbformat

    loader = importlib.machinery.SourceFileLoader("run_notebooks", str(runner))
    spec = importlib.util.spec_from_loader("run_notebooks", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("println!(\"a\");"), nbformat.v4.new_code_cell("1")])
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="first line\n")]
    client = mod.StrictClient(nb, kernel_name="rust-sslab")
    client.msg_cells = {"m0": 0, "m1": 1}
    stream = lambda parent, name, text: {"parent_header": {"msg_id": parent}, "msg_type": "stream", "content": {"name": name, "text": text}}
    client._record_stray(stream("m0", "stdout", "late line\n"))
    client._record_stray(stream("m1", "stdout", "late in an empty cell\n"))
    client._record_stray(stream("m0", "stderr", "late error\n"))
    texts = ["".join(o.get("text", "") for o in c.outputs) for c in nb.cells]
    return texts == ["first line\nlate line\n", "late in an empty cell\n"] and client.late_stderr == {0: ["late error\n"]}


def main():
    failures = 0
    ok = late_stdout_is_kept()
    failures += not ok
    print(f"{'ok  ' if ok else 'FAIL'} runner keeps stdout that arrives after its cell finished", flush=True)
    for name, (code, needles) in EXPECT.items():
        r = subprocess.run([sys.executable, str(runner), str(cases / name)], capture_output=True, text=True)
        out = r.stdout + r.stderr
        missing = [n for n in needles if n not in out]
        ok = r.returncode == code and not missing
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} runner on {name}: exit {r.returncode} (want {code})"
              + (f", missing {missing}\n{out}" if missing else ""), flush=True)
    passed = len(EXPECT) + 1 - failures
    print(f"runner tests: {passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
