"""JupyterLab's kernel manager for the course: a spare "Rust (sslab)" kernel,
started and warmed before a notebook asks for one.

Why: a new Rust (sslab) kernel needs 16-20 s on a 2-core machine before the
first cell's result (docs/performance.md: rust-analyzer, which evcxr runs
in-process, reads and indexes the source of sslab's ~200 dependencies on the
first `:dep` and the first variable; no setting of evcxr skips it). That
work cannot be made small from this project, but it can be done before the
student asks: `kernel/lab` starts JupyterLab with this class, which keeps one
warm kernel aside. Opening a notebook (or choosing the kernel) hands that
kernel over at once, and a new spare is warmed in the background for the
next notebook. The work is the same; the wait is gone whenever the spare had
the 16-20 s it needs (a notebook opened sooner waits only for the rest).

What a spare is:
  - a kernel of the kernelspec in SSLAB_SPARE_KERNEL_NAMES (default
    "rust-sslab"), started by this server with its usual launcher
    (kernel/launch), in the folder of the notebook opened last (at start-up:
    ch24/ under the server's root, else the root), because a kernel's working
    folder is the notebook's and relative paths in cells depend on it;
  - warmed by kernel/launch's warm start (`:dep sslab` and one variable while
    it starts, so the notebook's first two cells find nothing to do); for a
    spare the launcher also does it when sslab must first be compiled, since
    nobody waits for a spare (a one-shot marker file says "this start is a
    spare"; a later restart of the same kernel is an ordinary start);
  - counted ready when it answers kernel_info; hidden from the kernel list
    (GET /api/kernels) until handed over, so JupyterLab's running-kernels
    panel shows only the kernels of open notebooks;
  - one at a time (a warm kernel holds about 1.4 GB): a notebook in another
    folder gets a fresh kernel as before, and the spare moves to that folder.
Restarting a kernel (Kernel > Restart) is an ordinary start (with the warm
start when sslab is built), not a hand-over: the kernel keeps its id and its
connections. A spare that fails to start is logged and skipped; the notebook
then gets an ordinary kernel.

SSLAB_SPARE_KERNEL=0 turns it off (each notebook then starts its kernel
itself, as with plain `jupyter lab`).
"""
import asyncio
import os
import tempfile
import uuid

from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager
from tornado.ioloop import IOLoop

# What a Jupyter server is given to use this class (kernel/ on PYTHONPATH).
SERVER_OPTION = "--ServerApp.kernel_manager_class=spare_kernel.SpareKernelManager"

# A spare may compile sslab before it answers (the first start after a change
# to the crate): minutes on 2 cores. Nobody waits on it unless a notebook asks.
READY_TIMEOUT_S = 1800
FIRST_FOLDER = "ch24"


def spare_names():
    """The kernelspec names that get a spare ("" or SSLAB_SPARE_KERNEL=0: none)."""
    if os.environ.get("SSLAB_SPARE_KERNEL", "1").strip() in ("0", "", "false", "no", "off"):
        return ()
    return tuple(os.environ.get("SSLAB_SPARE_KERNEL_NAMES", "rust-sslab").split())


class SpareKernelManager(AsyncMappingKernelManager):
    """AsyncMappingKernelManager that keeps one warm kernel aside (see the module doc)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._spare_names = spare_names()
        self._spare = None  # (kernel_name, cwd, task resolving to a kernel id or None)
        self._spare_ids = set()  # started as spares and not yet handed over
        if self._spare_names:
            first = os.path.join(self.root_dir, FIRST_FOLDER)
            path = FIRST_FOLDER if os.path.isdir(first) else ""
            self._schedule_spare(self._spare_names[0], path)

    # -- the hand-over ----------------------------------------------------
    async def start_kernel(self, *, kernel_id=None, path=None, **kwargs):
        name = kwargs.get("kernel_name") or self.default_kernel_name
        if kernel_id is not None or name not in self._spare_names:
            return await super().start_kernel(kernel_id=kernel_id, path=path, **kwargs)
        cwd = self.cwd_for_path(path) if path is not None else self.root_dir
        spare = self._take_spare(name, cwd)
        # waits for the rest of its warm-up, if any; a spare that failed (logged) gives None
        kid = await spare if spare is not None else None
        if kid is not None and kid in self:
            self._spare_ids.discard(kid)
            self.log.info("[sslab] handed the warm spare kernel %s to %s", kid, path)
        else:
            kid = await super().start_kernel(path=path, **kwargs)
        self._schedule_spare(name, path)
        return kid

    def list_kernels(self):
        return [k for k in super().list_kernels() if k.get("id") not in self._spare_ids]

    # -- keeping one spare ------------------------------------------------
    def _take_spare(self, name, cwd):
        """The spare task for (name, cwd), removed from the pool; None if there is none."""
        if self._spare is None:
            return None
        s_name, s_cwd, task = self._spare
        if (s_name, s_cwd) != (name, cwd):
            return None
        self._spare = None
        return task

    def _schedule_spare(self, name, path):
        IOLoop.current().add_callback(self._keep_spare, name, path)

    async def _keep_spare(self, name, path):
        cwd = self.cwd_for_path(path) if path is not None else self.root_dir
        if self._spare is not None:
            s_name, s_cwd, task = self._spare
            failed = task.done() and (task.cancelled() or task.result() is None)
            if (s_name, s_cwd) == (name, cwd) and not failed:
                return
            # one spare at a time: the other folder's goes (once it has started)
            self._spare = None
            asyncio.ensure_future(self._discard(task))
        self._spare = (name, cwd, asyncio.ensure_future(self._start_spare(name, path)))

    async def _start_spare(self, name, path):
        """Starts and warms a spare; its kernel id, or None (logged) when it fails."""
        fd, marker = tempfile.mkstemp(prefix="sslab-spare-")
        os.close(fd)
        env = dict(os.environ, SSLAB_SPARE_MARKER=marker)
        # its id is hidden from the kernel list before the kernel exists
        kid = str(uuid.uuid4())
        self._spare_ids.add(kid)
        try:
            await super().start_kernel(kernel_id=kid, path=path, kernel_name=name, env=env)
            self.log.info("[sslab] warming a spare %s kernel %s in %s", name, kid, self.cwd_for_path(path))
            kc = self.get_kernel(kid).client()
            kc.start_channels()
            try:
                await kc.wait_for_ready(timeout=READY_TIMEOUT_S)
            finally:
                kc.stop_channels()
            self.log.info("[sslab] the spare kernel %s is ready", kid)
            return kid
        except Exception as e:  # noqa: BLE001
            self.log.warning("[sslab] no spare kernel: %s", e)
            self._spare_ids.discard(kid)
            if kid in self:
                await self.shutdown_kernel(kid, now=True)
            return None
        finally:
            try:
                os.unlink(marker)
            except FileNotFoundError:
                pass

    async def _discard(self, task):
        kid = await task
        if kid is not None and kid in self:
            self._spare_ids.discard(kid)
            await self.shutdown_kernel(kid, now=True)
