"""The one results store: xarray Datasets in netCDF, written atomically, resumable, on any executor."""

from results.executors import EXECUTORS, check_executor, complete, run_jobs
from results.store import StoreError, SweepStore, finished_store, open_store, to_dataset, write_atomic

__all__ = ["EXECUTORS", "StoreError", "SweepStore", "check_executor", "complete", "finished_store", "open_store",
           "run_jobs", "to_dataset", "write_atomic"]
