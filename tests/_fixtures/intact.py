"""After a fault: every artifact a finished result lists is readable and intact."""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf import message

from failurelens import catalog as cat
from failurelens.v1 import common_pb2


def artifact_refs(msg: message.Message) -> Iterator[common_pb2.ArtifactRef]:
    """Every ArtifactRef in a record, at any depth."""
    if isinstance(msg, common_pb2.ArtifactRef):
        if msg.uri:
            yield msg
        return
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        for item in value if field.is_repeated else [value]:
            if isinstance(item, message.Message):
                yield from artifact_refs(item)


def assert_intact(store, *records: message.Message) -> int:
    """Every artifact the records list exists with its recorded size and SHA-256; returns how many
    were checked (at least one per record)."""
    catalog = cat.Catalog(store)
    checked = 0
    for record in records:
        refs = list(artifact_refs(record))
        assert refs and all(r.sha256 for r in refs), f"{type(record).__name__} lists no checksummed artifact"
        bad = [r.uri for r in refs if not catalog.verify(r)]
        assert not bad, f"{type(record).__name__}: artifacts missing or changed: {bad[:3]}"
        checked += len(refs)
    return checked
