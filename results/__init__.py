"""The one results store: xarray Datasets in netCDF, written atomically, resumable."""

from results.store import StoreError, SweepStore, open_store, to_dataset, write_atomic

__all__ = ["StoreError", "SweepStore", "open_store", "to_dataset", "write_atomic"]
