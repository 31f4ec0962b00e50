"""Pipeline service. Orchestrates embed, discover, caption, generate and retrain over the other services."""

from failurelens.runtime import main
from failurelens.services._planned import planned
from failurelens.v1 import pipeline_pb2, pipeline_pb2_grpc

build = planned(pipeline_pb2, pipeline_pb2_grpc, "Pipeline", "the pipeline orchestrator lands once its stages exist")

if __name__ == "__main__":
    main("pipeline", build)
