"""A pool of Ray actors, each loading the same model once and running featurescope calls on it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from ..configs import Config
from ..errors import FeaturescopeError
from ..models import load_model
from .cluster import _ray


@dataclasses.dataclass(frozen=True)
class ModelSpec(Config):
    """How every worker loads its model: :func:`featurescope.load_model` arguments, plus the resources one actor
    takes (``num_gpus`` > 1 with ``device_map="auto"`` splits one model over several GPUs)."""

    name: str
    stage: str | None = None
    adapter: str | None = None
    dtype: str = "float32"
    device: str | None = None
    device_map: str | None = None
    num_cpus: float = 1.0
    num_gpus: float = 0.0

    def load(self) -> Any:
        return load_model(
            self.name,
            stage=self.stage,  # type: ignore[arg-type]
            adapter=self.adapter,
            dtype=self.dtype,
            device=self.device,
            device_map=self.device_map,
            progress=False,
        )


class _Worker:
    """The actor body: one model, loaded when the actor starts (and again if Ray restarts it)."""

    def __init__(self, spec: ModelSpec):
        torch.set_num_threads(max(1, int(spec.num_cpus)))
        # a load error is kept and reported by ready(), not raised: an actor whose constructor raises is restarted
        # and retried by Ray instead of failing the pool at once
        self.error: str | None = None
        try:
            self.model = spec.load()
        except Exception as e:  # noqa: BLE001 - reported to the driver with its type and message
            self.error = f"{type(e).__name__}: {e}"

    def run(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        if self.error is not None:
            raise RuntimeError(f"this worker could not load its model: {self.error}")
        return fn(self.model, *args, **kw)

    def ready(self) -> tuple[int, str | None]:
        return os.getpid(), self.error

    def pid(self) -> int:
        return os.getpid()


class WorkerPool:
    """``n_workers`` actors holding ``spec``'s model. :meth:`map` runs ``fn(model, *args)`` for each argument tuple
    and yields ``(i, result)`` as they finish. Each actor is restarted up to ``max_restarts`` times when its
    process dies and its in-flight call retried up to ``max_retries`` times (Ray's actor fault tolerance)."""

    def __init__(
        self,
        spec: ModelSpec,
        n_workers: int = 2,
        *,
        max_restarts: int = 3,
        max_retries: int = 3,
        start_timeout: float = 600.0,
    ):
        if n_workers < 1:
            raise FeaturescopeError("a worker pool needs at least one worker")
        ray = _ray()
        if not ray.is_initialized():
            raise FeaturescopeError("no Ray connection: use the pool inside `with RayCluster(...):`")
        self.spec = spec
        #: called as ``on_result(pool, i, result)`` after each finished call of :meth:`map` (progress, tests)
        self.on_result: Callable[..., None] | None = None
        cls = ray.remote(_Worker).options(
            num_cpus=spec.num_cpus,
            num_gpus=spec.num_gpus,
            max_restarts=max_restarts,
            max_task_retries=max_retries,
        )
        self.actors = [cls.remote(spec) for _ in range(n_workers)]
        try:  # fail here, naming the model, if the actors cannot start (bad name, not enough resources...)
            states = ray.get([a.ready.remote() for a in self.actors], timeout=start_timeout)
        except Exception as e:  # noqa: BLE001 - Ray wraps the worker's error in its own exception types
            self.close()
            raise FeaturescopeError(
                f"the Ray workers could not start with {spec.name!r} within {start_timeout:.0f} s: {e} (enough free "
                f"CPUs / GPUs for {n_workers} workers of {spec.num_cpus} CPU and {spec.num_gpus} GPU each?)"
            ) from e
        errors = [err for _, err in states if err]
        if errors:
            self.close()
            raise FeaturescopeError(f"the Ray workers could not start with {spec.name!r}: {errors[0]}")

    def map(
        self, fn: Callable[..., Any], arg_list: Sequence[tuple[Any, ...]], on_result: Callable[..., None] | None = None
    ) -> Iterator[tuple[int, Any]]:
        """At most one call in flight per actor; results in completion order."""
        ray = _ray()
        pending: dict[Any, tuple[int, int]] = {}
        queue = list(enumerate(arg_list))
        free = list(range(len(self.actors)))

        def submit() -> None:
            while free and queue:
                k = free.pop(0)
                i, args = queue.pop(0)
                pending[self.actors[k].run.remote(fn, *args)] = (i, k)

        submit()
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            i, k = pending.pop(done[0])
            result = ray.get(done[0])
            free.append(k)
            submit()
            cb = on_result or self.on_result
            if cb is not None:
                cb(self, i, result)
            yield i, result

    def close(self) -> None:
        ray = _ray()
        for a in self.actors:
            ray.kill(a)
        self.actors = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
