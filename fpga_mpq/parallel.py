"""Independent trainings (the uniform ladder, a method beside its uniform reference) as Ray tasks.

``--ray-address local`` (the default) starts Ray on this machine with one task per core; an address
(``ray://head:10001`` or ``head:6379``) sends the tasks to a running cluster, whose nodes need this
package installed; ``off`` runs them here one after another. Every task trains on one thread in
either mode: on this project's networks one thread trains 1.5-4x faster than two (measured on
2 cores), two tasks then share the cores, and the float sums are the same whatever runs them, so a
Ray run gives the serial run's results for the same seeds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fpga_mpq.errors import BadInput

SERIAL, LOCAL = "off", "local"
RAY_ADDRESS_ENV = "FPGA_MPQ_RAY_ADDRESS"  # the CLI's --ray-address when it is not given
DEVICES = ("auto", "cpu", "cuda")  # --device: where a training runs (fpga_mpq.train.resolve_device)
T = TypeVar("T")


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Torch on one thread for the duration (restored after)."""
    import torch  # here: the CLI imports this module and must start fast

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _task(fn: Callable[[Any, Any], T], shared: Any, item: Any) -> tuple[T, float]:
    """One task: ``fn(shared, item)`` on one thread, with its wall time."""
    start = time.perf_counter()
    with one_thread(), warnings.catch_warnings():
        # Ray hands a task its arrays read-only (shared memory); torch warns on wrapping them, and no
        # task writes to its data
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        value = fn(shared, item)
    return value, time.perf_counter() - start


@dataclass(frozen=True)
class Runner:
    """Where independent tasks run: ``off`` (here, in order), ``local`` (a Ray on this machine) or a
    Ray cluster's address. Progress goes to stderr, one line per finished task, so ``--json`` output
    on stdout stays clean."""

    address: str = LOCAL

    def map(
        self, fn: Callable[[Any, Any], T], shared: Any, items: Sequence[Any], names: Sequence[str], what: str
    ) -> list[tuple[T, float]]:
        """``fn(shared, item)`` for every item, each result with its task's seconds, in the items' order.
        ``fn`` must be a module-level function (it is pickled to the workers); ``shared`` is sent once."""
        if self.address == SERIAL or len(items) <= 1:
            out = []
            for k, item in enumerate(items):
                out.append(_task(fn, shared, item))
                _progress(what, k + 1, len(items), names[k], out[-1][1], len(items) - k - 1)
            return out
        return self._ray_map(fn, shared, items, names, what)

    def _ray_map(
        self, fn: Callable[[Any, Any], T], shared: Any, items: Sequence[Any], names: Sequence[str], what: str
    ) -> list[tuple[T, float]]:
        ray = _start(self.address)
        task = ray.remote(num_cpus=1)(_task)
        shared_ref = ray.put(shared)
        refs = {task.remote(fn, shared_ref, item): k for k, item in enumerate(items)}
        cpus = int(ray.cluster_resources().get("CPU", 1))
        print(f"[{what}] {len(items)} tasks on Ray ({cpus} CPUs)", file=sys.stderr, flush=True)
        out: list[tuple[T, float] | None] = [None] * len(items)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            k = refs[ready[0]]
            try:
                out[k] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                raise e.cause from None  # the task's own error (a BadInput stays one clear message)
            done = len(items) - len(pending)
            _progress(what, done, len(items), names[k], out[k][1], len(pending))
        return out


SERIAL_RUNNER = Runner(SERIAL)


def _progress(what: str, done: int, total: int, name: str, seconds: float, left: int) -> None:
    print(f"[{what}] {done}/{total} done: {name} in {seconds:.0f} s, {left} left", file=sys.stderr, flush=True)


def _start(address: str):
    """Ray, connected once per process: started here for ``local``, else joined at ``address``."""
    try:
        import ray
    except ImportError:
        raise BadInput("--ray-address: Ray is not installed (pip install ray), or pass --ray-address off") from None
    if not ray.is_initialized():
        options = {
            "include_dashboard": False,
            "logging_level": logging.WARNING,
            "log_to_driver": True,
            # Brevitas warns at import in every worker about an optional package; nothing to act on
            "runtime_env": {"env_vars": {"PYTHONWARNINGS": "ignore:fast_hadamard_transform package not found"}},
        }
        handlers = _signal_handlers()
        try:
            if address == LOCAL:
                # Ray warns on every start that it turned token authentication on for the new local
                # cluster: the secure default, nothing for the user to act on
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
                ray.init(num_cpus=os.cpu_count(), **options)
            else:
                ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise BadInput(f"--ray-address {address}: could not connect to Ray ({str(e).strip()[:200]})") from None
        finally:
            # Ray's core installs its own SIGTERM handler, which aborts the process with a stack dump;
            # ours stops cleanly (exit 143, scratch folders removed, Ray shut down at exit)
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return ray


def _signal_handlers() -> dict[int, object]:
    """SIGTERM's and SIGINT's Python handlers, which only the main thread may set back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}


def check_address(address: str) -> str:
    """``off``, ``local`` or a cluster address (``ray://host:port`` or ``host:port``)."""
    if address in (SERIAL, LOCAL):
        return address
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--ray-address {address!r}: one of off, local, ray://HOST:PORT or HOST:PORT")
    return address
