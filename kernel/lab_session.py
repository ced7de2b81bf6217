"""Opening a notebook in a running Jupyter server the way JupyterLab does it:
a session over the REST API (which starts or hands over its kernel), then
cells sent over the kernel's websocket; and waiting for a line of the server's log. Used by `kernel/measure-latency --lab`
and tests/lab_test.py."""
import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tornado.websocket import websocket_connect


def api(base, token, method, path, body=None, timeout=600):
    """(HTTP status, parsed JSON body or None) of one REST call."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"{base}{path}", data=data, method=method,
                                 headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read().decode()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        return e.code, None


def wait_for_log(log_path, text, count=1, limit=120, server=None):
    """Waits until the server log `log_path` holds `text` `count` times;
    True then, False after `limit` seconds or once `server` (its Popen) ended."""
    t = time.time()
    while time.time() - t < limit:
        if Path(log_path).read_text(errors="replace").count(text) >= count:
            return True
        if server is not None and server.poll() is not None:
            return False
        time.sleep(0.2)
    return False


def open_notebook(base, token, path, kernel_name):
    """Creates the session JupyterLab creates when a notebook is opened; returns its model."""
    status, model = api(base, token, "POST", "/api/sessions",
                        {"path": path, "name": path.rsplit("/", 1)[-1], "type": "notebook",
                         "kernel": {"name": kernel_name}})
    if status != 201:
        raise RuntimeError(f"POST /api/sessions for {path}: HTTP {status}")
    return model


def code_cells(notebook_file, n):
    """The sources of the first `n` code cells of a notebook file."""
    cells = json.load(open(notebook_file))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][:n]


async def _run_cells(base, token, kernel_id, codes, timeout):
    ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels?token={token}"
    ws = await websocket_connect(ws_url)
    session = uuid.uuid4().hex
    results = []
    try:
        for code in codes:
            msg_id = uuid.uuid4().hex
            ws.write_message(json.dumps({
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "session": session,
                           "username": "sslab", "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            t0 = time.time()
            text = []
            reply = None
            idle = False
            # done at its reply (shell) and its "idle" status (iopub, sent after every output)
            while reply is None or not idle:
                raw = await asyncio.wait_for(ws.read_message(), timeout)
                if raw is None:
                    raise RuntimeError("the kernel's websocket closed")
                msg = json.loads(raw)
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                content = msg.get("content", {})
                if msg["msg_type"] == "stream":
                    text.append(content.get("text", ""))
                elif msg["msg_type"] in ("execute_result", "display_data"):
                    text.append(content.get("data", {}).get("text/plain", ""))
                elif msg["msg_type"] == "error":
                    text.append(f"{content.get('ename')}: {content.get('evalue')}")
                elif msg["msg_type"] == "execute_reply":
                    reply = (content.get("status"), round(time.time() - t0, 2))
                elif msg["msg_type"] == "status" and content.get("execution_state") == "idle":
                    idle = True
            results.append((*reply, "".join(text)))
    finally:
        ws.close()
    return results


def run_cells(base, token, kernel_id, codes, timeout=900):
    """Runs `codes` one after another in the kernel; [(status, seconds to the reply, output text)]."""
    return asyncio.run(_run_cells(base, token, kernel_id, codes, timeout))
