#!/usr/bin/env python3
"""Live progress and the stop button, through the real "Rust (sslab)" kernel.

    .venv/bin/python tests/interrupt_test.py

Starts the kernel as JupyterLab would (its kernelspec: kernel/launch,
interrupt_mode "signal") and checks, with a short SimCLR run on the embedded
shapes data:

  * a training call longer than 10 s prints at least three progress lines
    (marked with sslab::train::MARK) before it ends, and one summary line;
  * an interrupt during the call ends the cell within a few seconds, without
    an error, saying where it stopped; the next cell still has every variable,
    and the run's step count is the steps done; train_for again continues;
  * a cell that ignores the first interrupt (a watched call that never looks
    at it) is still ended by a second one, as evcxr ended cells before;
  * the notebook runner's drop_progress keeps the summary line only.
"""
import queue
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "kernel"))
from checks import check, summary  # noqa: E402
import handouts  # noqa: E402

from jupyter_client.manager import KernelManager  # noqa: E402

MARK = handouts.PROGRESS_MARK


def run(kc, code, timeout, on_stream=None):
    """Executes `code`; returns (reply content or None on time-out, stdout, stderr, error outputs)."""
    msg_id = kc.execute(code)
    out, err, errors = [], [], []
    deadline = time.time() + timeout
    reply = None
    idle = False
    while time.time() < deadline and not (reply is not None and idle):
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except queue.Empty:
            msg = None
        if msg and msg["parent_header"].get("msg_id") == msg_id:
            t = msg["msg_type"]
            if t == "stream":
                (out if msg["content"]["name"] == "stdout" else err).append(msg["content"]["text"])
                if on_stream:
                    on_stream("".join(out))
            elif t == "error":
                errors.append(" ".join(msg["content"].get("traceback", [])) or msg["content"].get("evalue", ""))
            elif t == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
        if reply is None:
            try:
                r = kc.get_shell_msg(timeout=0.01)
                if r["parent_header"].get("msg_id") == msg_id:
                    reply = r["content"]
            except queue.Empty:
                pass
    return reply, "".join(out), "".join(err), errors


def progress_lines(text):
    return [l for l in text.splitlines() if l.startswith(MARK)]


def main():
    km = KernelManager(kernel_name="rust-sslab")
    km.start_kernel(cwd=str(ROOT / "notebooks" / "ch25"))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=180)
        check(km.kernel_spec.interrupt_mode == "signal", "the kernelspec asks for signal interrupts", km.kernel_spec.interrupt_mode)
        reply, out, err, errors = run(kc, ':dep sslab = { path = "../../crate" }', 900)
        check(reply is not None and reply["status"] == "ok" and not errors, "the crate loads", err[-500:] + " ".join(errors)[-500:])
        setup = """use sslab::prelude::*;
let dev = sslab::device::device()?;
let (train, _) = sslab::data::load_images("shapes", 600, 0)?;
let mut run = Pretrainer::new(PretrainConfig { steps: 2000, batch_size: 16, warmup_steps: 0, ..PretrainConfig::for_method(MethodName::SimClr) }, train.image_shape()?, &dev.device)?;
let marker = 42;
println!("installed: {}", sslab::interrupt::installed());"""
        reply, out, err, errors = run(kc, setup, 300)
        check("installed: true" in out, "the kernel's process installs the stop handler", out + err)

        # 1. progress lines while a long call runs, then the stop button
        seen = {}

        def watch(text):
            if len(progress_lines(text)) >= 3 and "at" not in seen:
                seen["at"] = time.time()

        msg_id_time = time.time()
        result = {}

        def on_stream(text):
            watch(text)
            if "at" in seen and "sent" not in seen:
                seen["sent"] = time.time()
                km.interrupt_kernel()

        reply, out, err, errors = run(kc, "run.train_for(2000, &train)?;\nprintln!(\"cell went on\");", 240, on_stream)
        ended = time.time()
        lines = progress_lines(out)
        check(len(lines) >= 3, f"a long training call prints at least three progress lines ({len(lines)} in {seen.get('at', time.time()) - msg_id_time:.0f} s)", out[-800:])
        check(all("step " in l and "steps/s" in l and "s left" in l and "(last " in l for l in lines), "each progress line has the step, the averaged metric, the rate and the time left", "\n".join(lines[:3]))
        check("sent" in seen, "the stop button was pressed during the call")
        if "sent" in seen:
            check(ended - seen["sent"] < 5.0, f"the call ends within a few seconds of the interrupt ({ended - seen['sent']:.1f} s)", f"{ended - seen['sent']:.1f} s")
            result["stopped"] = True
        check(reply is not None and reply["status"] == "ok" and not errors, "the interrupted cell ends without an error", err[-500:] + " ".join(errors)[-300:])
        check("stopped by the interrupt after" in out and "cell went on" in out, "the call says where it stopped, and the cell goes on", out[-600:])
        reply, out, err, errors = run(kc, 'println!("steps {} marker {}", run.history().len(), marker);', 120)
        done = None
        for word in out.split():
            if word.isdigit() and done is None:
                done = int(word)
        check(done is not None and 0 < done < 2000 and "marker 42" in out, f"the next cell has every variable, and the run has the steps done ({done} of 2000)", out + err)
        reply, out, err, errors = run(kc, 'run.train_for(5, &train)?;\nprintln!("now {}", run.history().len());', 120)
        check(done is not None and f"now {done + 5}" in out, "train_for again continues from there", out + err)
        summaries = [l for l in out.splitlines() if l.startswith("simclr pretraining:")]
        check(len(summaries) == 1 and not progress_lines(out), "a short call prints its summary line only", out)

        # 2. a cell that ignores the first interrupt is ended by the second
        sent = []

        def twice(_text):
            if not sent:
                sent.append(time.time())
                km.interrupt_kernel()

        code = 'let _w = sslab::interrupt::Watch::start();\nprintln!("waiting");\nloop { std::thread::sleep(std::time::Duration::from_millis(20)); }'
        msg_id = kc.execute(code)
        t0 = time.time()
        while not sent and time.time() - t0 < 60:
            try:
                msg = kc.get_iopub_msg(timeout=0.5)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
                twice(msg["content"]["text"])
        time.sleep(2.0)
        still_busy = True
        try:
            r = kc.get_shell_msg(timeout=0.5)
            still_busy = r["parent_header"].get("msg_id") != msg_id
        except queue.Empty:
            pass
        check(sent and still_busy, "a cell that ignores the first interrupt keeps running")
        km.interrupt_kernel()
        ended = None
        t1 = time.time()
        while time.time() - t1 < 30:
            try:
                r = kc.get_shell_msg(timeout=0.5)
            except queue.Empty:
                continue
            if r["parent_header"].get("msg_id") == msg_id:
                ended = time.time() - t1
                break
        check(ended is not None, f"a second interrupt ends it ({ended or 0:.1f} s)", "no reply within 30 s")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)

    # 3. the runner keeps each call's summary line only
    nb = {"cells": [{"cell_type": "code", "source": "", "metadata": {}, "outputs": [
        {"output_type": "stream", "name": "stdout", "text": f"{MARK}simclr pretraining: step 40/400\n{MARK}simclr pretraining: step 80/400\nsimclr pretraining: 400 steps, loss 5.0 → 1.0 [12.0 s]\n"},
        {"output_type": "stream", "name": "stdout", "text": f"{MARK}only progress\n"},
    ]}]}
    handouts.drop_progress(nb)
    outs = nb["cells"][0]["outputs"]
    check(len(outs) == 1 and outs[0]["text"] == "simclr pretraining: 400 steps, loss 5.0 → 1.0 [12.0 s]\n", "drop_progress keeps the summary line only", repr(outs))
    return summary("interrupt")


if __name__ == "__main__":
    sys.exit(main())
