"""Start the processes of a run: one process, N spawned processes, or join torchrun's group.

``--gpus N`` spawns one process per GPU (NCCL); ``--gpus 0 --cpu-procs N`` spawns N CPU
processes (gloo), the same code path, so tests on a laptop exercise real distributed runs.
When ``RANK``/``WORLD_SIZE`` are already set (``torchrun``, also across nodes) the process
joins that group and spawns nothing.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import multiprocessing.connection
import os
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sslcli.engine.runtime import make_runtime
from sslcli.errors import SSLError, runtime_error, usage_error

if TYPE_CHECKING:
    from multiprocessing.queues import SimpleQueue

Worker = Callable[..., None]
"""A function ``worker(runtime, *args)`` run once in every process; must be module-level."""

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE")
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=60)
"""How long a rank waits for its peers: rank 0 alone runs evaluations between steps."""


@dataclass(frozen=True)
class LaunchPlan:
    device_type: str
    """``cuda`` or ``cpu``."""
    processes: int
    """Processes to start on this machine (1: run in this process)."""
    from_torchrun: bool = False
    """True when torchrun started this process: join its group, spawn nothing."""


def plan_launch(
    gpus: int | None, cpu_procs: int, cuda_count: int, env: Mapping[str, str]
) -> LaunchPlan:
    """Decide device and process count from ``--gpus``/``--cpu-procs`` and the machine.

    ``gpus=None`` means one GPU when CUDA is present, else the CPU.
    """
    if gpus is None:
        gpus = 1 if cuda_count > 0 else 0
    if gpus < 0:
        raise usage_error(f"--gpus must be 0 or more, got {gpus}", "use --gpus 0 for the CPU")
    if cpu_procs < 1:
        raise usage_error(f"--cpu-procs must be 1 or more, got {cpu_procs}")
    if gpus > 0 and cpu_procs > 1:
        raise usage_error("--cpu-procs applies only to CPU runs", "add --gpus 0, or drop it")
    if gpus > cuda_count:
        found = f"found {cuda_count} GPU" + ("" if cuda_count == 1 else "s")
        hint = "use --gpus 0 to run on the CPU" if cuda_count == 0 else f"use --gpus {cuda_count}"
        raise usage_error(f"asked for {gpus} GPUs but {found} on this machine", hint)
    device_type = "cuda" if gpus > 0 else "cpu"
    if all(name in env for name in TORCHRUN_VARIABLES):
        if gpus > 1 or cpu_procs > 1:
            raise usage_error(
                "under torchrun, torchrun starts the processes",
                "set them with torchrun --nproc-per-node; pass --gpus 1 (GPU) or --gpus 0 (CPU)",
            )
        return LaunchPlan(device_type, int(env["WORLD_SIZE"]), from_torchrun=True)
    return LaunchPlan(device_type, gpus if gpus > 0 else cpu_procs)


def launch(plan: LaunchPlan, precision: str, seed: int, worker: Worker, *args: Any) -> None:
    """Run ``worker(runtime, *args)`` in every process of the plan; returns when all are done.

    A :class:`SSLError` raised in any process is raised again here, in the caller.
    """
    if plan.from_torchrun:
        _run_in_group(plan.device_type, precision, seed, worker, args, env=os.environ)
    elif plan.processes == 1:
        worker(make_runtime(plan.device_type, precision, seed), *args)
    else:
        _spawn(plan, precision, seed, worker, args)


PORT_ATTEMPTS = 5
"""Rendezvous ports tried: a port found free can be taken by another program before rank 0
binds it (:func:`_free_port` cannot hold it for the workers)."""
_PORT_TAKEN_EXIT_CODE = 98
"""A spawned rank 0 exits with this (Linux's errno EADDRINUSE) when its port was taken."""


class _PortTaken(RuntimeError):
    """Rank 0 could not listen on the rendezvous port: another program holds it."""


class _WorkersFailed(Exception):
    """A worker failed; ``killed`` maps the rank of each worker that a signal had ended, before
    the others were stopped, to that signal's number."""

    def __init__(self, cause: Exception, killed: dict[int, int]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.killed = killed


class _SignalForwarder:
    """The launching process's SIGTERM handler: passes the signal on to the workers.

    It is installed before the workers start, so that a SIGTERM arriving while they start
    neither kills this process (leaving them behind) nor goes unseen: it is held and passed
    on as soon as the workers exist.
    """

    def __init__(self) -> None:
        self._processes: Any = None
        self._pending: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self._processes is None:
            self._pending = signum
        else:
            _forward(signum, self._processes)

    def attach(self, processes: Any) -> None:
        self._processes = processes
        if self._pending is not None:
            signum, self._pending = self._pending, None
            _forward(signum, processes)

    def detach(self) -> None:
        self._processes = None


def _forward(signum: int, processes: Any) -> None:
    for process in processes.processes:
        if process.is_alive():
            os.kill(process.pid, signum)


@contextlib.contextmanager
def _signals_for_workers() -> Iterator[_SignalForwarder]:
    """Within the block this process ignores Ctrl-C and passes SIGTERM on to the workers.

    The workers handle both (finish the step, checkpoint, exit 0); the terminal sends Ctrl-C
    to them too.
    """
    forwarder = _SignalForwarder()
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, forwarder)
    try:
        yield forwarder
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)


def _spawn(plan: LaunchPlan, precision: str, seed: int, worker: Worker, args: tuple) -> None:
    with _signals_for_workers() as forwarder:
        for _ in range(PORT_ATTEMPTS):
            if _run_workers(plan, _free_port(), precision, seed, worker, args, forwarder):
                return
    raise runtime_error(
        f"the worker processes found their rendezvous port taken {PORT_ATTEMPTS} times",
        "another program on this machine is taking ports; run again",
    )


def _run_workers(
    plan: LaunchPlan,
    port: int,
    precision: str,
    seed: int,
    worker: Worker,
    args: tuple,
    forwarder: _SignalForwarder,
) -> bool:
    """Start the workers on ``port`` and wait for them: True when they all succeeded, False
    when ``port`` turned out to be taken. Raises the :class:`SSLError` their failure means."""
    import torch.multiprocessing as mp

    errors: SimpleQueue = mp.get_context("spawn").SimpleQueue()
    processes = mp.start_processes(
        _spawned_process,
        args=(plan, port, precision, seed, worker, args, errors),
        nprocs=plan.processes,
        join=False,
        start_method="spawn",
    )
    forwarder.attach(processes)
    try:
        _join(processes)
    except _WorkersFailed as failed:
        if not errors.empty():
            message, hint, exit_code = errors.get()
            raise SSLError(message, hint, exit_code=exit_code) from failed.cause
        if failed.killed:
            raise _killed_error(*min(failed.killed.items())) from failed.cause
        if processes.processes[0].exitcode == _PORT_TAKEN_EXIT_CODE:
            return False
        last_line = str(failed.cause).strip().splitlines()[-1]
        raise runtime_error(
            f"a worker process failed: {last_line}", "run again with --debug for the traceback"
        ) from failed.cause
    finally:
        forwarder.detach()
    return True


def _join(processes: Any) -> None:
    """Wait until every worker has ended; raise :class:`_WorkersFailed` when one failed.

    torch's ``ProcessContext.join`` reports one failed worker, the first it looks at, and
    stops the others with SIGTERM. Which workers a signal killed is read here before that:
    a worker the OOM killer ended is then named even when a survivor's "Connection closed
    by peer" is what join reports.
    """
    import torch.multiprocessing as mp

    while True:
        running = [process.sentinel for process in processes.processes if process.exitcode is None]
        if running:
            multiprocessing.connection.wait(running)
        killed = {
            rank: -process.exitcode
            for rank, process in enumerate(processes.processes)
            if process.exitcode is not None and process.exitcode < 0
        }
        try:
            if processes.join():
                return
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as failure:
            if isinstance(failure, mp.ProcessExitedException) and failure.exit_code < 0:
                killed.setdefault(failure.error_index, -failure.exit_code)
            raise _WorkersFailed(failure, killed) from failure


def _killed_error(rank: int, signum: int) -> SSLError:
    """The error for a worker that a signal ended (no Python traceback: it had no chance)."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    if signum == signal.SIGKILL:
        return runtime_error(
            f"the worker process of rank {rank} was killed by SIGKILL, most likely by the "
            "operating system because the machine ran out of memory",
            "use a smaller --batch-size or fewer processes",
        )
    return runtime_error(f"the worker process of rank {rank} was killed by {name}")


def _spawned_process(
    index: int,
    plan: LaunchPlan,
    port: int,
    precision: str,
    seed: int,
    worker: Worker,
    args: tuple,
    errors: SimpleQueue,
) -> None:
    env = {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(index),
        "LOCAL_RANK": str(index),
        "WORLD_SIZE": str(plan.processes),
    }
    os.environ.update(env)
    if plan.device_type == "cpu":
        import torch

        # share the cores instead of oversubscribing them (torchrun sets OMP_NUM_THREADS=1)
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // plan.processes))
    try:
        _run_in_group(plan.device_type, precision, seed, worker, args, env=env)
    except SSLError as error:
        errors.put((error.message, error.hint, error.exit_code))
        raise SystemExit(error.exit_code) from error
    except _PortTaken as taken:  # the launcher tries another port
        raise SystemExit(_PORT_TAKEN_EXIT_CODE) from taken
    # The work is done and the group destroyed: leave without the interpreter's teardown, where
    # gloo's threads, freed in no fixed order, now and then abort a finished worker
    # ("terminate called without an active exception": once in this project's test runs).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _run_in_group(
    device_type: str,
    precision: str,
    seed: int,
    worker: Worker,
    args: tuple,
    env: Mapping[str, str],
) -> None:
    import torch.distributed as dist

    rank, world_size = int(env["RANK"]), int(env["WORLD_SIZE"])
    local_rank = int(env.get("LOCAL_RANK", "0"))
    runtime = make_runtime(
        device_type, precision, seed, rank=rank, local_rank=local_rank, world_size=world_size
    )
    backend = "nccl" if device_type == "cuda" else "gloo"
    init = {"device_id": runtime.device} if device_type == "cuda" else {}
    try:
        dist.init_process_group(
            backend, rank=rank, world_size=world_size, timeout=COLLECTIVE_TIMEOUT, **init
        )
    except dist.DistNetworkError as error:
        if "EADDRINUSE" in str(error):  # rank 0 could not listen on MASTER_PORT
            raise _PortTaken(str(error)) from error
        raise
    try:
        worker(runtime, *args)
        dist.barrier()
    finally:
        # Free what still holds the group (DDP reducers sit in reference cycles) while the
        # interpreter is alive: gloo work freed during interpreter shutdown aborts the process.
        gc.collect()
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
