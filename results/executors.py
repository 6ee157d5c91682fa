"""Run a sweep's jobs in-process, on a local process pool, or on Ray; each job saves its own part.

A job is ``(function, args)``: a picklable top-level ``function`` that computes one
grid point and writes it atomically into the sweep's store
(:meth:`results.SweepStore.save`). Whatever the executor, a crash loses only the
jobs still running, and a job computes the same numbers in any process (of the
same machine type), so the combined store does not depend on the executor.

* ``local``: one job after the other in this process (the default);
* ``process``: a :class:`concurrent.futures.ProcessPoolExecutor` of ``workers``
  processes, started with ``spawn`` (JAX and torch are not fork-safe);
* ``ray``: a local Ray instance of ``workers`` CPUs listening on loopback only,
  or the cluster at ``address`` (whose nodes must import this package and see
  the store's folder). What this module starts, it shuts down.
"""

import concurrent.futures
import importlib.util
import ipaddress
import multiprocessing
import os
import warnings

from tqdm.auto import tqdm

from results.store import StoreError

EXECUTORS = ("local", "process", "ray")


def check_executor(executor, workers=None, address=None):
    """Reject an executor setting with one line naming the bad value."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers} must be ≥ 1")
    if address is not None and executor != "ray":
        raise ValueError(f"--address {address!r} needs --executor ray, not {executor!r}")
    if address is not None and workers is not None:
        raise ValueError(f"workers = {workers} sizes a local Ray instance; the cluster at {address} uses its own CPUs")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ValueError("executor 'ray' needs ray (pip install 'staleness-repro[ray]')")


def run_jobs(jobs, executor="local", workers=None, address=None, progress=True, desc="sweep"):
    """Run every job ``(function, args)``; return when all have finished, raising the first failure.

    ``workers``: processes of the pool, or CPUs of a local Ray instance (default:
    every core); ``address``: an existing Ray cluster. The progress bar counts
    finished jobs.
    """
    check_executor(executor, workers, address)
    jobs = list(jobs)
    with tqdm(total=len(jobs), desc=desc, unit="job", disable=not progress) as bar:
        if executor == "local" or not jobs:
            for function, args in jobs:
                function(*args)
                bar.update()
        elif executor == "process":
            _run_pool(jobs, min(workers or os.cpu_count(), len(jobs)), bar)
        else:
            _run_ray(jobs, workers, address, bar)


def complete(store, jobs, executor="local", workers=None, address=None, progress=True, desc="sweep"):
    """Run the jobs whose part is missing from ``store``, then combine every part and return the Dataset.

    ``jobs`` pairs each grid point (a dict, as :meth:`results.SweepStore.load`
    takes it) with the job ``(function, args)`` that saves its part.
    """
    parts = [store.load(**point) for point, _ in jobs]
    run_jobs([job for (_, job), part in zip(jobs, parts) if part is None], executor, workers, address, progress, desc)
    for i, (point, _) in enumerate(jobs):
        if parts[i] is None:
            parts[i] = store.load(**point)
            if parts[i] is None:
                raise StoreError(f"the job of {point} saved no part in {store.parts} (do all workers see it?)")
    return store.finish(parts)


def _run_pool(jobs, workers, bar):
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [pool.submit(function, *args) for function, args in jobs]
        for future in concurrent.futures.as_completed(futures):
            future.result()
            bar.update()
    finally:
        # jobs already running finish and save their parts; queued ones are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def _call(function, args):
    """One remote function serves every job."""
    return function(*args)


def _run_ray(jobs, workers, address, bar):
    if address is None:
        # Without this a local instance binds every interface; ray reads it once, when first imported.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    started = not ray.is_initialized()
    with warnings.catch_warnings():
        # ray starts its daemons by fork + exec, which JAX's warning about a bare fork cannot tell apart
        warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
        if started and address is not None:
            ray.init(address=address, log_to_driver=False)
        elif started:
            ray.init(num_cpus=workers or os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        if started and address is None:
            host = ray.get_runtime_context().gcs_address.rsplit(":", 1)[0].strip("[]")
            if not ipaddress.ip_address(host).is_loopback:
                raise RuntimeError(f"the local Ray instance listens on {host}, not loopback: set "
                                   "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 before ray is imported")
        call = ray.remote(num_cpus=1)(_call)
        pending = [call.remote(function, args) for function, args in jobs]
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                ray.get(done)
                bar.update(len(done))
        except ray.exceptions.RayTaskError as error:
            raise error.cause from None  # the job's own exception, not Ray's wrapper
        finally:
            for ref in pending:
                ray.cancel(ref)
    finally:
        if started:
            ray.shutdown()
