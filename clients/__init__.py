"""Client side of failurelens: the generated gRPC stubs (``failurelens.v1``) wrapped for pipelines."""

from failurelens.clients.client import FailureLensClient, FailureLensError, describe_error, unpack_details
from failurelens.clients.upload import MODEL_KINDS, upload_and_register_dataset, upload_and_register_model, upload_dataset, upload_file

__all__ = [
    "MODEL_KINDS",
    "FailureLensClient",
    "FailureLensError",
    "describe_error",
    "unpack_details",
    "upload_and_register_dataset",
    "upload_and_register_model",
    "upload_dataset",
    "upload_file",
]
