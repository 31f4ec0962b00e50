"""The service runtime every failurelens service shares (boot, health, reflection, metrics,
auth, errors, jobs, shutdown)."""

from failurelens.runtime.config import ServiceConfig
from failurelens.runtime.jobs import JobContext, JobRegistry
from failurelens.runtime.server import Binding, Server, ServiceContext, main

__all__ = ["Binding", "JobContext", "JobRegistry", "Server", "ServiceConfig", "ServiceContext", "main"]
