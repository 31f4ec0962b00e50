"""Generated protobuf/gRPC code for the failurelens.v1 API. Do not edit: run `python tools/gen_protos.py`."""
