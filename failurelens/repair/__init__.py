"""Repair algorithms (mitigation paper): prompts for targeted data, linear-head retraining, the
collective analysis. Pure: numpy/torch in, dataclasses out; no gRPC, no storage."""
