"""Client side of failurelens: the generated gRPC stubs (``failurelens.v1``) wrapped for pipelines."""

from failurelens.clients.client import FailureLensClient, FailureLensError, describe_error
from failurelens.clients.upload import upload_dataset, upload_file

__all__ = ["FailureLensClient", "FailureLensError", "describe_error", "upload_dataset", "upload_file"]
