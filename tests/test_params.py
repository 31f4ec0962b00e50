"""Parameters, once: every tunable field of every analysis RPC (discovery, captioning, generation,
retraining) sets the library
estimator's parameter of the same name, and an unset field yields exactly the estimator's own
``__init__`` default (the only place a default lives)."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from google.protobuf import descriptor

from failurelens.errors import InvalidParameter
from failurelens.services import _params, captioning, generation, retraining, slice_discovery
from failurelens.v1 import captioning_pb2, generation_pb2, retraining_pb2, slice_discovery_pb2

TABLE = {**slice_discovery.ESTIMATORS, **captioning.ESTIMATORS, **generation.ESTIMATORS, **retraining.ESTIMATORS}
MODULES = (slice_discovery_pb2, captioning_pb2, generation_pb2, retraining_pb2)
#: optional for presence, not a parameter of an estimator: which model version (unset: the latest)
NOT_TUNABLE = {"model_version"}


def _defaults(cls: type) -> dict[str, object]:
    return {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items() if n != "self" and p.default is not inspect.Parameter.empty}


def _params_of(obj: object) -> dict[str, object]:
    return obj.get_params() if hasattr(obj, "get_params") else dataclasses.asdict(obj)  # type: ignore[union-attr, call-overload]


def _optional_scalars(msg: type) -> list[str]:
    return [f.name for f in msg.DESCRIPTOR.fields if f.has_presence and f.type != descriptor.FieldDescriptor.TYPE_MESSAGE]


def test_every_optional_field_of_an_analysis_request_is_a_tunable_of_its_estimator():
    covered = {req for req, _ in TABLE.values()}
    for module in MODULES:
        for name in module.DESCRIPTOR.message_types_by_name:
            msg = getattr(module, name)
            optional = [f for f in _optional_scalars(msg) if f not in NOT_TUNABLE]
            if not optional:
                continue
            assert msg in covered, f"{name} has tunable fields {optional} but no estimator reads them"
            est = next(e for r, e in TABLE.values() if r is msg)
            missing = set(optional) - set(_params.tunable_fields(msg, est))
            assert not missing, f"{name}.{sorted(missing)} are optional but {est.__name__} has no such parameter"


@pytest.mark.parametrize("rpc", sorted(TABLE))
def test_unset_fields_yield_exactly_the_estimator_defaults(rpc):
    request_type, estimator = TABLE[rpc]
    fields = _params.tunable_fields(request_type, estimator)
    assert fields, f"{rpc}: no tunable fields"
    fixed = {"base_url": "http://x", "model": "m"} if estimator.__name__ == "LlmSettings" else {}
    built = _params.estimator(estimator, request_type(), **fixed)
    defaults = _defaults(estimator)
    got = _params_of(built)
    for name in fields:
        assert got[name] == defaults[name], f"{rpc}.{name}: unset gave {got[name]!r}, the estimator's default is {defaults[name]!r}"


def test_set_fields_reach_the_estimator_and_bad_ones_name_the_field():
    req = slice_discovery_pb2.FitFailureTreesRequest(max_depth=3, tau=0.3, seed=7, groupings=[1])
    est = slice_discovery.trees_estimator(req)
    assert (est.max_depth, est.tau, est.seed, est.groupings) == (3, 0.3, 7, ["label"])
    d = slice_discovery.directions_estimator(slice_discovery_pb2.FitFailureDirectionsRequest(error_modes=0, c_grid=[0.5, 2.0]))
    assert d.error_modes == 0 and d.c_grid == [0.5, 2.0]
    cap = captioning.direction_captioner(captioning_pb2.CaptionDirectionsRequest(method=captioning_pb2.DIRECTION_CAPTION_METHOD_TEXT_SCORE))
    assert cap.method == "text_score"
    for request, builder, field in [
        (slice_discovery_pb2.FitFailureTreesRequest(holdout_fraction=1.5), slice_discovery.trees_estimator, "holdout_fraction"),
        (slice_discovery_pb2.FitFailureTreesRequest(max_depth=0), slice_discovery.trees_estimator, "max_depth"),
        (slice_discovery_pb2.FitFailureTreesRequest(groupings=[0]), slice_discovery.trees_estimator, "groupings"),
        (slice_discovery_pb2.FitFailureDirectionsRequest(error_modes=1), slice_discovery.directions_estimator, "error_modes"),
        (
            captioning_pb2.CaptionDirectionsRequest(method=captioning_pb2.DIRECTION_CAPTION_METHOD_UNSPECIFIED),
            captioning.direction_captioner,
            "method",
        ),
    ]:
        with pytest.raises(InvalidParameter) as ei:
            builder(request)
        assert ei.value.field == field and field in str(ei.value)
