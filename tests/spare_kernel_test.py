#!/usr/bin/env python3
"""Tests of kernel/spare_kernel.py, JupyterLab's kernel manager that keeps one
warm kernel aside, on Python kernels (they start in a second; the Rust kernel
goes through the same code, and tests/lab_test.py checks it through `make lab`).

A Jupyter server with the manager, on a folder with ch24/ and other/:
  - a spare is started in ch24/ and hidden from GET /api/kernels;
  - opening ch24/a.ipynb hands that spare over (the log names its id) and the
    kernel works in ch24/; a new spare is then warmed in ch24/;
  - opening other/b.ipynb starts a kernel there (no spare for that folder),
    and the spare moves to other/: the ch24/ one is shut down (one at a time);
  - a spare that dies while it starts is skipped: the notebook still gets a
    working kernel (a kernelspec that fails when started as a spare);
  - SSLAB_SPARE_KERNEL=0: no spare at all.
Run by `make test`.
"""
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(root / "kernel"))
from checks import check, free_port, stop, summary  # noqa: E402
from lab_session import api, open_notebook, run_cells, wait_for_log  # noqa: E402
from spare_kernel import SERVER_OPTION  # noqa: E402

PY = root / ".venv" / "bin" / "python"
EMPTY_NOTEBOOK = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def start_server(tmp, notebooks, spare_names, **env_extra):
    port = free_port()
    token = secrets.token_hex(16)
    log_path = tmp / f"server-{port}.log"
    env = dict(os.environ, JUPYTER_TOKEN=token, JUPYTER_CONFIG_DIR=str(tmp / "config"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), JUPYTER_PATH=str(tmp / "share"),
               PYTHONPATH=str(root / "kernel"), SSLAB_SPARE_KERNEL_NAMES=spare_names, **env_extra)
    server = subprocess.Popen(
        [str(PY.parent / "jupyter"), "server", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         f"--ServerApp.root_dir={notebooks}", SERVER_OPTION]
        + (["--allow-root"] if os.geteuid() == 0 else []),
        stdout=open(log_path, "w"), stderr=subprocess.STDOUT, start_new_session=True, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        if server.poll() is not None:
            break
        try:
            if api(base, token, "GET", "/api/status", timeout=2)[0] == 200:
                break
        except OSError:
            pass
        time.sleep(0.5)
    return server, base, token, log_path


def cwd_of(base, token, kernel_id):
    r = run_cells(base, token, kernel_id, ["import os; print(os.getcwd())"], timeout=60)
    return r[0][2].strip() if r and r[0][0] == "ok" else f"failed: {r}"


def main():
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        nbs = tmp / "notebooks"
        for f in ("ch24/a.ipynb", "ch24/c.ipynb", "other/b.ipynb"):
            (nbs / f).parent.mkdir(parents=True, exist_ok=True)
            (nbs / f).write_text(json.dumps(EMPTY_NOTEBOOK))
        ch24, other = str((nbs / "ch24").resolve()), str((nbs / "other").resolve())

        server, base, token, log = start_server(tmp, nbs, "python3")
        try:
            check(wait_for_log(log, " is ready"), "a spare kernel is started and warmed when the server starts",
                  log.read_text()[-1500:])
            check(f"in {ch24}" in log.read_text(), "the first spare's folder is ch24/", log.read_text()[-800:])
            status, kernels = api(base, token, "GET", "/api/kernels")
            check(status == 200 and kernels == [], "the spare is hidden from the kernel list", f"{status} {kernels}")
            a = open_notebook(base, token, "ch24/a.ipynb", "python3")["kernel"]["id"]
            check(f"handed the warm spare kernel {a}" in log.read_text(), "opening a notebook in ch24/ hands the spare over",
                  log.read_text()[-800:])
            got = cwd_of(base, token, a)
            check(got == ch24, "the handed-over kernel works, in the notebook's folder", got)
            check(wait_for_log(log, " is ready", 2), "a new spare is warmed after the hand-over")
            status, kernels = api(base, token, "GET", "/api/kernels")
            check([k["id"] for k in kernels] == [a], "the kernel list shows the notebook's kernel only", str(kernels))
            b = open_notebook(base, token, "other/b.ipynb", "python3")["kernel"]["id"]
            check(f"handed the warm spare kernel {b}" not in log.read_text(),
                  "a notebook in another folder gets a kernel of its own, not the ch24/ spare")
            got = cwd_of(base, token, b)
            check(got == other, "that kernel runs in its notebook's folder", got)
            check(wait_for_log(log, f"in {other}") and wait_for_log(log, " is ready", 3), "the spare moves to that folder")
            spare_ids = [l.split("kernel ")[1].split()[0] for l in log.read_text().splitlines() if "warming a spare" in l]
            check(len(spare_ids) == 3 and wait_for_log(log, f"Kernel shutdown: {spare_ids[1]}", limit=30),
                  "one spare at a time: the ch24/ spare is shut down", str(spare_ids))
            c = open_notebook(base, token, "other/b.ipynb", "python3")["kernel"]["id"]
            check(c == b, "a notebook whose session exists keeps its kernel")
        finally:
            stop(server)

        # a kernelspec that fails when started as a spare (its marker set), and works otherwise
        spec = tmp / "share" / "kernels" / "flaky"
        spec.mkdir(parents=True)
        script = spec / "start"
        script.write_text(f'#!/bin/sh\n[ -n "$SSLAB_SPARE_MARKER" ] && exit 3\nexec "{PY}" -m ipykernel_launcher -f "$1"\n')
        script.chmod(0o755)
        (spec / "kernel.json").write_text(json.dumps({"argv": [str(script), "{connection_file}"],
                                                      "display_name": "flaky", "language": "python"}))
        server, base, token, log = start_server(tmp, nbs, "flaky")
        try:
            check(wait_for_log(log, "no spare kernel"), "a spare that dies while starting is logged", log.read_text()[-1500:])
            status, kernels = api(base, token, "GET", "/api/kernels")
            check(status == 200 and kernels == [], "the dead spare is not left in the kernel list", str(kernels))
            k = open_notebook(base, token, "ch24/a.ipynb", "flaky")["kernel"]["id"]
            check(cwd_of(base, token, k) == ch24, "the notebook still gets a working kernel")
        finally:
            stop(server)

        server, base, token, log = start_server(tmp, nbs, "python3", SSLAB_SPARE_KERNEL="0")
        try:
            k = open_notebook(base, token, "ch24/a.ipynb", "python3")["kernel"]["id"]
            time.sleep(3)
            text = log.read_text()
            check(cwd_of(base, token, k) == ch24 and "spare" not in text, "SSLAB_SPARE_KERNEL=0: no spare kernel",
                  text[-800:])
        finally:
            stop(server)
    return summary("spare kernel")


if __name__ == "__main__":
    sys.exit(main())
