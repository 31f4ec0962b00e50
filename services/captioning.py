"""Captioning service. Names failure modes in words: direction/rule captions, caption validation, failure backgrounds."""

from failurelens.runtime import main
from failurelens.services._planned import planned
from failurelens.v1 import captioning_pb2, captioning_pb2_grpc

build = planned(captioning_pb2, captioning_pb2_grpc, "Captioning", "captioning lands with the failure-discovery work")

if __name__ == "__main__":
    main("captioning", build)
