#!/usr/bin/env python3
"""`make lab`, the README's first command, as a new user runs it.

Run by `make test` (after the notebooks, so the pre-warm finds its cache warm).

1. `make lab NO_BROWSER=1 PORT=<free port>` in the background, as whoever runs
   the test (root in CI and in containers): the server answers on /lab, its
   API lists the "Rust (sslab)" kernel, it still asks for a token (an API call
   without one is refused), and it listens on the loopback address only. As
   root the output says why it passes --allow-root. Its spare kernel
   (kernel/spare_kernel.py) is warmed, hidden from the kernel list, handed
   to notebook 24.1 when that is opened, runs the notebook's first two cells,
   and restarts. Then it is stopped.
2. kernel/lab (the step of `make lab` that starts the server) with a
   stand-in for jupyter: the arguments it passes, with --allow-root only as
   root; when the test runs as root, also as the ordinary user `nobody`.
3. When the test runs as root and `nobody` can run .venv's Python and read
   the checkout, JupyterLab served by kernel/lab as that user: the checks of 1,
   and no --allow-root. (A .venv made from a Python under /root, as pyenv
   installs it, cannot be run by another user: then this part says so.)
"""
import json
import os
import pwd
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

root = Path(__file__).resolve().parent.parent
STARTUP_S = 1200  # make lab runs setup and the pre-warm first: minutes when the cache is cold
SPARE_S = 900  # the spare kernel may compile sslab first
sys.path.insert(0, str(root / "kernel"))
from checks import check, free_port, stop, summary  # noqa: E402
from lab_session import api, code_cells, open_notebook, run_cells, wait_for_log  # noqa: E402


def get(url, token=None):
    """(status, body) of a GET; the token goes in the Authorization header."""
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, ""


def listening_addresses(port):
    """Local addresses with a socket listening on `port` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            addr, p = fields[1].split(":")
            if int(p, 16) == port and fields[3] == "0A":  # 0A: LISTEN
                raw = bytes.fromhex(addr)
                # the kernel prints each 32-bit word in host (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(socket.inet_ntop(socket.AF_INET if width == 8 else socket.AF_INET6, raw))
    return found


def spare_checks(who, base, token, log_path):
    """The warm spare kernel of kernel/spare_kernel.py, through the real Rust kernel:
    it is warmed while the server runs, hidden from the kernel list, handed to
    notebook 24.1 when it is opened, runs the notebook's first two cells, and
    survives a restart (an ordinary start then)."""
    t0 = time.time()
    if not check(wait_for_log(log_path, " is ready", limit=SPARE_S),
                 f"{who}: a warm spare Rust (sslab) kernel is ready ({time.time() - t0:.0f} s after the server)",
                 log_path.read_text(errors="replace")[-1500:]):
        return
    status, kernels = api(base, token, "GET", "/api/kernels")
    check(status == 200 and kernels == [], f"{who}: the spare is hidden from the kernel list", f"HTTP {status}, {kernels}")
    t = time.time()
    session = open_notebook(base, token, "ch24/01_why_ssl.ipynb", "rust-sslab")
    kid = session["kernel"]["id"]
    check(f"handed the warm spare kernel {kid}" in log_path.read_text(errors="replace"),
          f"{who}: opening notebook 24.1 hands the spare over")
    results = run_cells(base, token, kid, code_cells(root / "notebooks" / "ch24" / "01_why_ssl.ipynb", 2)
                        + ["sslab_warm_start"])
    check([r[0] for r in results] == ["ok"] * 3 and "profile:" in results[1][2],
          f"{who}: the notebook's first two cells run in it "
          f"({time.time() - t:.1f} s from opening the notebook; cells {[r[1] for r in results[:2]]} s), "
          "and the warm start's variable is there", str(results))
    status, _ = api(base, token, "POST", f"/api/kernels/{kid}/restart")
    results = run_cells(base, token, kid, ["let y = 1 + 1;\ny"]) if status == 200 else []
    check(status == 200 and results and results[0][0] == "ok" and results[0][2].strip() == "2",
          f"{who}: the handed-over kernel restarts (an ordinary start) and runs a cell", f"HTTP {status}, {results}")
    api(base, token, "DELETE", f"/api/sessions/{session['id']}")


def serve_and_check(who, cmd, port, env, user=None, expect_root_note=False, extra=None):
    """Starts `cmd`, waits for the server on `port`, checks it, runs `extra(who, base, token, log_path)`, stops it."""
    token = env["JUPYTER_TOKEN"]
    log_path = Path(env["SSLAB_LAB_LOG"])
    log = open(log_path, "w")
    server = subprocess.Popen(cmd, cwd=root, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True, env=env, user=user)
    base = f"http://127.0.0.1:{port}"
    try:
        t0 = time.time()
        status = None
        while time.time() - t0 < STARTUP_S and server.poll() is None:
            try:
                status, _ = get(f"{base}/api/status", token)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        text = log_path.read_text(errors="replace")
        if status != 200:
            check(False, f"{who}: the server answers", f"exit code {server.poll()}; log tail:\n{text[-1500:]}")
            return
        check(True, f"{who}: the server answers ({time.time() - t0:.0f} s after the command)")
        status, body = get(f"{base}/lab", token)
        check(status == 200 and "JupyterLab" in body, f"{who}: /lab serves JupyterLab", f"HTTP {status}")
        status, body = get(f"{base}/api/kernelspecs", token)
        specs = json.loads(body).get("kernelspecs", {}) if status == 200 else {}
        names = {k: v.get("spec", {}).get("display_name") for k, v in specs.items()}
        check(names.get("rust-sslab") == "Rust (sslab)", f"{who}: the server lists the Rust (sslab) kernel", f"HTTP {status}, {names}")
        status, _ = get(f"{base}/api/kernelspecs")
        check(status == 403, f"{who}: without its token the API refuses (token authentication kept)", f"HTTP {status}")
        addrs = listening_addresses(port)
        check(bool(addrs) and all(a in ("127.0.0.1", "::1") for a in addrs), f"{who}: it listens on localhost only",
              f"listening on {sorted(addrs)}")
        note = "running as root" in text and "--allow-root" in text
        check(note == expect_root_note, f"{who}: " + ("the output says why --allow-root is passed" if expect_root_note
                                                       else "no --allow-root for an ordinary user"), text[-800:])
        if extra is not None:
            extra(who, base, token, log_path)
    finally:
        stop(server)
        log.close()
    check(server.returncode is not None, f"{who}: the server stops")


def runs_as(user, cmd):
    try:
        return subprocess.run(cmd, user=user, capture_output=True).returncode == 0
    except OSError:  # the executable itself cannot be run by `user`
        return False


def stand_in_checks(tmp, user):
    """kernel/lab's arguments with a stand-in for jupyter that prints them, as `user` (None: as now)."""
    stub = tmp / f"jupyter-{user or 'self'}"
    stub.write_text('#!/bin/sh\necho "args: $*"\n')
    stub.chmod(0o755)
    env = dict(os.environ, SSLAB_LAB_JUPYTER=str(stub))
    r = subprocess.run([str(root / "kernel" / "lab"), "--no-browser", "--port", "8123"], capture_output=True, text=True, env=env, user=user)
    args = next((l for l in r.stdout.splitlines() if l.startswith("args: ")), "")
    return r, args


def main():
    is_root = os.geteuid() == 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        port = free_port()
        env = dict(os.environ, JUPYTER_TOKEN=secrets.token_hex(16), JUPYTER_CONFIG_DIR=str(tmp / "config"),
                   JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), SSLAB_LAB_LOG=str(tmp / "make-lab.log"))
        for k in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):
            env.pop(k, None)
        who = "make lab as root" if is_root else "make lab as an ordinary user"
        serve_and_check(who, ["make", "--no-print-directory", "lab", "NO_BROWSER=1", f"PORT={port}"], port, env,
                        expect_root_note=is_root, extra=spare_checks)

        r, args = stand_in_checks(tmp, None)
        want = "--allow-root" in args
        check(r.returncode == 0 and "--port=8123" in args and "--ip=localhost" in args and "--no-browser" in args and want == is_root,
              f"kernel/lab passes port, localhost and --no-browser{', and --allow-root as root' if is_root else ', and no --allow-root'}",
              r.stdout + r.stderr)
        if not is_root:
            print("skip kernel/lab as root: the test does not run as root")
        else:
            try:
                nobody = pwd.getpwnam("nobody")
            except KeyError:
                nobody = None
            tmp.chmod(0o711)  # nobody may pass through to its files below
            if nobody is not None and runs_as(nobody.pw_uid, ["test", "-x", str(root / "kernel" / "lab")]):
                r, args = stand_in_checks(tmp, nobody.pw_uid)
                check(r.returncode == 0 and "--ip=localhost" in args and "--allow-root" not in args and "running as root" not in r.stdout,
                      "kernel/lab as the ordinary user nobody: no --allow-root, still localhost", r.stdout + r.stderr)
            else:
                print("skip kernel/lab as the ordinary user nobody: no `nobody` user, or it cannot run kernel/lab in this checkout")
            python = root / ".venv" / "bin" / "python"
            if nobody is None or not runs_as(nobody.pw_uid, [str(python), "-c", "pass"]) \
                    or not runs_as(nobody.pw_uid, ["test", "-r", str(root / "notebooks")]):
                print("skip JupyterLab served as the ordinary user nobody: no `nobody` user, or it cannot run .venv's Python "
                      f"({python.resolve()}) or read the checkout")
            else:
                home = tmp / "home"
                home.mkdir()
                os.chown(home, nobody.pw_uid, nobody.pw_gid)
                port = free_port()
                # the spare kernel is checked above; as nobody (no Rust toolchain of its own) there is none
                uenv = dict(env, SSLAB_SPARE_KERNEL="0", HOME=str(home), USER="nobody", JUPYTER_CONFIG_DIR=str(home / "config"),
                            JUPYTER_RUNTIME_DIR=str(home / "runtime"), SSLAB_LAB_LOG=str(tmp / "lab-nobody.log"))
                serve_and_check("kernel/lab as the ordinary user nobody", [str(root / "kernel" / "lab"), "--no-browser", "--port", str(port)],
                                port, uenv, user=nobody.pw_uid)
    # bad options are refused with the option named
    r = subprocess.run([str(root / "kernel" / "lab"), "--port", "eighty"], capture_output=True, text=True)
    check(r.returncode == 2 and "--port takes a number, got 'eighty'" in r.stderr, "kernel/lab names a bad option", r.stderr)
    return summary("lab")


if __name__ == "__main__":
    sys.exit(main())
