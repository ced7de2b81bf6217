"""What the Python tests share: a named check that records failures, the
closing line, a free local port, and stopping a server."""
import os
import signal
import socket
import subprocess

failures = []


def check(ok, what, detail=""):
    """Prints `ok  what` or `FAIL what: detail`, records a failure, returns `ok`."""
    print(f"{'ok  ' if ok else 'FAIL'} {what}" + (f": {detail}" if detail and not ok else ""), flush=True)
    if not ok:
        failures.append(what)
    return ok


def summary(name):
    """Prints the closing line and returns the exit code."""
    print(f"{name} tests: {'all passed' if not failures else f'{len(failures)} failed'}")
    return 1 if failures else 0


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(process, timeout=30):
    """Ends a server started with start_new_session=True: SIGTERM to its
    process group, SIGKILL if it is still there after `timeout` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
