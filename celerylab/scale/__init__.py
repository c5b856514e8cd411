"""Beyond one machine (docs/scale.md): ship profiles to object storage, ingest them on a Dask cluster into a
partitioned Parquet dataset, and analyse the dataset as one set.

Needs the ``scale`` extra (``pip install 'celerylab[scale]'``: dask, distributed, fsspec, s3fs).  Nothing here is
imported by ``import celerylab`` or by the in-memory loader.
"""

from __future__ import annotations

from .dataset import Dataset, open_dataset
from .ingest import IngestReport, ingest, local_cluster
from .ship import ShipReport, ship

__all__ = ["Dataset", "IngestReport", "ShipReport", "ingest", "local_cluster", "open_dataset", "ship"]
