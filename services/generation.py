"""Generation service. Targeted synthetic images '{class} {background}' registered as a dataset."""

from failurelens.runtime import main
from failurelens.services._planned import planned
from failurelens.v1 import generation_pb2, generation_pb2_grpc

build = planned(generation_pb2, generation_pb2_grpc, "Generation", "image generation lands with the mitigation work")

if __name__ == "__main__":
    main("generation", build)
