#!/usr/bin/env python3
"""Tests of kernel/launch's warm start: a kernel whose build folder has built
sslab since its sources last changed gets a start-up configuration that adds
`:dep sslab` (and the notebooks' settings); a folder without that build, a
stale one, or SSLAB_WARM_START=0 keeps the kernelspec's configuration, except
for a spare kernel's first start (its one-shot marker file).

Runs kernel/launch with a stand-in for evcxr_jupyter that prints what it was
given. Run by `make test`.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

root = Path(__file__).resolve().parent.parent
launch = root / "kernel" / "launch"
crate = (root / "crate").resolve()
config = root / "kernel" / "evcxr"


def run(kernel_dir, **env):
    fake = Path(kernel_dir) / "fake-evcxr"
    fake.write_text('#!/bin/sh\necho "tmpdir=$EVCXR_TMPDIR"\necho "config=$EVCXR_CONFIG_DIR"\n'
                    'cat "$EVCXR_CONFIG_DIR/init.evcxr"\n')
    fake.chmod(0o755)
    e = dict(os.environ, SSLAB_KERNEL_DIR=str(Path(kernel_dir) / "k"), EVCXR_CONFIG_DIR=str(config), **env)
    e.pop("SSLAB_CUDA", None)
    r = subprocess.run([str(launch), str(fake), "--control_file", "x.json"], capture_output=True, text=True, env=e)
    assert r.returncode == 0, r.stderr
    return r.stdout


def fake_build(kernel_dir, age_s=0.0, of=crate):
    """Cargo's dependency list of a build of the sslab at `of`, `age_s` old."""
    deps = Path(kernel_dir) / "k" / "slot-0" / "target" / "x86_64-unknown-linux-gnu" / "debug" / "deps"
    deps.mkdir(parents=True, exist_ok=True)
    d = deps / "sslab-0123456789abcdef.d"
    d.write_text(f"{d}: {of}/src/lib.rs {of}/src/nn/mod.rs\n")
    t = time.time() - age_s
    os.utime(d, (t, t))


def main():
    dep_line = f':dep sslab = {{ path = "{crate}" }}'
    newest_source = max(p.stat().st_mtime for p in list((crate / "src").rglob("*")) + [crate / "Cargo.toml"])
    checks = []
    with tempfile.TemporaryDirectory() as d:
        out = run(d)
        checks.append(("no build yet: the kernelspec's configuration", f"config={config}\n" in out and dep_line not in out))
        checks.append(("a build folder of its own", f"tmpdir={d}/k/slot-0\n" in out))
        # a build older than the newest source file: stale, no warm start
        fake_build(d, age_s=time.time() - newest_source + 60)
        out = run(d)
        checks.append(("stale build: no warm start", dep_line not in out))
        # a fresh build of another checkout's sslab: no warm start
        fake_build(d, of="/elsewhere/crate")
        out = run(d)
        checks.append(("another checkout's build: no warm start", dep_line not in out))
        # a spare kernel (JupyterLab's, kernel/spare_kernel.py) warms up even with a
        # stale build, once: its marker file is consumed, so a restart is ordinary
        marker = Path(d) / "spare-marker"
        marker.touch()
        out = run(d, SSLAB_SPARE_MARKER=str(marker))
        checks.append(("a spare kernel warms up even with a stale build", dep_line in out
                       and "let sslab_warm_start = ();" in out))
        checks.append(("the spare's marker is consumed", not marker.exists()))
        out = run(d, SSLAB_SPARE_MARKER=str(marker))
        checks.append(("the same kernel restarted (marker gone): no warm start with a stale build", dep_line not in out))
        fake_build(d)
        out = run(d)
        checks.append(("fresh build: warm start", f"config={d}/k/slot-0.config\n" in out and dep_line in out
                       and "let sslab_warm_start = ();" in out and ":cache 4096" in out))
        out = run(d, SSLAB_WARM_START="0")
        checks.append(("SSLAB_WARM_START=0: off", dep_line not in out))
    failures = 0
    for name, ok in checks:
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} launch: {name}", flush=True)
    print(f"launch tests: {len(checks) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
