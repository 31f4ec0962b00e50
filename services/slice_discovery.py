"""SliceDiscovery service. Failure trees (Barlow) and failure directions (SVMs on CLIP embeddings), with held-out validation."""

from failurelens.runtime import main
from failurelens.services._planned import planned
from failurelens.v1 import slice_discovery_pb2, slice_discovery_pb2_grpc

build = planned(slice_discovery_pb2, slice_discovery_pb2_grpc, "SliceDiscovery", "failure trees and directions land with the failure-discovery work")

if __name__ == "__main__":
    main("slice_discovery", build)
