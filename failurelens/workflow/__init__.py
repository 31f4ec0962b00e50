"""Workflows over the failurelens services: finding a classifier's failure modes and repairing them.

They call the services through :class:`~failurelens.workflow.calls.ServiceCalls`, so the same
code runs in the SDK (a client's channels) and in the pipeline service (its peers).
"""
