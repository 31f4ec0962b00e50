"""Retraining service. Linear-head retraining with a lambda-weighted debug loss, and its evaluation."""

from failurelens.runtime import main
from failurelens.services._planned import planned
from failurelens.v1 import retraining_pb2, retraining_pb2_grpc

build = planned(retraining_pb2, retraining_pb2_grpc, "Retraining", "head retraining lands with the mitigation work")

if __name__ == "__main__":
    main("retraining", build)
