"""Connecting to Ray: a local cluster started for the run, or an existing one at an address."""

from __future__ import annotations

import importlib.util
import socket
from types import TracebackType
from typing import Any

from ..errors import FeaturescopeError


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


def _ray() -> Any:
    if not ray_available():
        raise FeaturescopeError("Ray is not installed: pip install 'featurescope[ray]' (or pip install ray)")
    import ray  # optional dependency (the [ray] extra): imported only when a distributed run is asked for

    return ray


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens at ``HOST:PORT`` (``ray.init`` itself retries for
    minutes before giving up)."""
    addr = address.removeprefix("ray://")
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit():
        raise FeaturescopeError(f"Ray address {address!r} is not HOST:PORT (or 'auto')")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise FeaturescopeError(
            f"cannot reach the Ray cluster at {address!r} ({e}); start it with `ray start --head` on that machine, "
            "or drop ADDRESS to start a local cluster"
        ) from e


class RayCluster:
    """``with RayCluster(address, n_cpus=2):`` - connect to Ray at ``address`` ("auto" = the cluster this machine
    joined with ``ray start``; ``None`` = start a local one with ``n_cpus`` CPUs for this run and stop it after).
    An address that cannot be reached is a :class:`FeaturescopeError` naming it."""

    def __init__(self, address: str | None = None, *, n_cpus: int | None = None, n_gpus: int | None = None):
        self.address = address or None
        self.n_cpus = n_cpus
        self.n_gpus = n_gpus
        self._started = False

    def __enter__(self) -> RayCluster:
        ray = _ray()
        if self.address and self.address != "auto":
            check_reachable(self.address)
        if ray.is_initialized():
            return self
        kw: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        try:
            if self.address:
                ray.init(address=self.address, **kw)
            else:
                ray.init(num_cpus=self.n_cpus, num_gpus=self.n_gpus, **kw)
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = f"the Ray cluster at {self.address!r}" if self.address else "a local Ray cluster"
            raise FeaturescopeError(
                f"cannot connect to {where}: {e}. Start one with `ray start --head` (and `ray start "
                "--address HEAD:6379` on the other machines) or drop --ray ADDRESS to start a local one."
            ) from e
        self._started = True
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._started:
            _ray().shutdown()
            self._started = False

    def resources(self) -> dict[str, float]:
        return dict(_ray().cluster_resources())
