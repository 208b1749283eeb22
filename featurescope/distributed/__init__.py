"""Work spread over Ray actors, each holding one model: capture shards into one activation store, generate answer
chunks into one resumable JSONL. The driver alone writes manifests and result files; a worker that dies loses at
most its in-flight shard, which Ray retries on a restarted actor."""

from __future__ import annotations

from .cluster import RayCluster, ray_available
from .pool import ModelSpec, WorkerPool
from .tasks import capture_on_pool, generate_on_pool

__all__ = ["ModelSpec", "RayCluster", "WorkerPool", "capture_on_pool", "generate_on_pool", "ray_available"]
