"""A server's Prometheus series beyond gRPC and jobs: what its work moves.

``failurelens_triton_request_seconds`` (per Triton model and outcome), ``failurelens_images_total``
(images embedded or generated, per model or generator), ``failurelens_artifact_bytes_written_total``
and ``failurelens_store_write_errors_total``, and ``failurelens_discovery_classes_fitted_total``
(per analysis). Stores and Triton clients report through hooks (``on_write`` / ``on_request``), so
the libraries below the runtime know nothing of Prometheus.
"""

from __future__ import annotations

from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram

from failurelens.store.base import ArtifactStore
from failurelens.triton.client import TritonClient

S = TypeVar("S", bound=ArtifactStore)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Telemetry:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.triton_seconds = Histogram(
            "failurelens_triton_request_seconds", "Triton inference calls, by model and outcome (ok, error).", ["model", "outcome"],
            registry=registry, buckets=BUCKETS,
        )  # fmt: skip
        self.images = Counter("failurelens_images_total", "Images embedded or generated.", ["kind", "model"], registry=registry)
        self.bytes_written = Counter("failurelens_artifact_bytes_written_total", "Bytes written to the artifact store.", registry=registry)
        self.write_errors = Counter("failurelens_store_write_errors_total", "Writes to the artifact store that failed.", registry=registry)
        self.classes_fitted = Counter(
            "failurelens_discovery_classes_fitted_total", "Classes fitted by a discovery analysis.", ["analysis"], registry=registry
        )

    def watch_store(self, store: S) -> S:
        """The store, reporting the bytes it writes and its failed writes here."""
        store.on_write = self.bytes_written.inc
        store.on_write_error = self.write_errors.inc
        return store

    def watch_triton(self, client: TritonClient) -> TritonClient:
        """The client, reporting each inference call's duration and outcome here."""
        client.on_request = lambda model, seconds, ok: self.triton_seconds.labels(model, "ok" if ok else "error").observe(seconds)
        return client
