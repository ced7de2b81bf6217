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


def main():
    failures = 0
    for name, (code, needles) in EXPECT.items():
        r = subprocess.run([sys.executable, str(runner), str(cases / name)], capture_output=True, text=True)
        out = r.stdout + r.stderr
        missing = [n for n in needles if n not in out]
        ok = r.returncode == code and not missing
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} runner on {name}: exit {r.returncode} (want {code})"
              + (f", missing {missing}\n{out}" if missing else ""), flush=True)
    passed = len(EXPECT) - failures
    print(f"runner tests: {passed} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
