"""The catalog's versioned writes on both stores (a folder and a real S3-protocol server): records
are compare-and-set, a lost race removes its own version, old versions go only once no record
refers to them, every artifact carries its checksum."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from failurelens import catalog as cat
from failurelens import errors
from failurelens.store import ArtifactStore, LocalStore, S3Store
from failurelens.v1 import embedding_pb2

pytest_plugins = ["tests._fixtures.s3server"]
KIND = "embedding set"


@pytest.fixture(params=["local", "s3"])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[cat.Catalog]:
    if request.param == "local":
        yield cat.Catalog(LocalStore(tmp_path / "store"))
        return
    endpoint, access_key, secret_key = request.getfixturevalue("s3_endpoint")
    store = S3Store(endpoint, access_key, secret_key, f"c-{uuid.uuid4().hex[:20]}")
    yield cat.Catalog(store)
    for info in list(store.list()):
        store.delete(info.key)


def _write(
    catalog: cat.Catalog, entity_id: str, value: int, overwrite: bool = True, started: threading.Barrier | None = None
) -> embedding_pb2.EmbeddingSet:
    with catalog.writing(KIND, entity_id, overwrite) as version:
        rec = embedding_pb2.EmbeddingSet(embedding_id=entity_id, num_rows=value)
        rec.rows.CopyFrom(version.npy("rows.npy", np.arange(value)))
        rec.features.CopyFrom(version.npy("features.npy", np.full((value, 4), value, np.float32)))
        if started is not None:
            started.wait()  # every writer has staged its version before any commits
        version.commit(rec)
    return rec


def _versions(store: ArtifactStore, entity_id: str) -> set[str]:
    folder = f"embeddings/{entity_id}/"
    return {i.key[len(folder) :].rstrip("/") for i in store.list(folder, recursive=False) if i.is_dir}


def test_artifacts_carry_their_checksums_and_verify(catalog: cat.Catalog):
    rec = _write(catalog, "e1", 5)
    assert rec.rows.sha256 and rec.features.sha256 and all(catalog.verify(r) for r in (rec.rows, rec.features))
    catalog.store.put_bytes(catalog.store.key_from_uri(rec.rows.uri), b"tampered")
    assert not catalog.verify(rec.rows)
    catalog.store.delete(catalog.store.key_from_uri(rec.features.uri))
    assert not catalog.verify(rec.features)


def test_an_overwrite_replaces_the_version_and_removes_the_old_one(catalog: cat.Catalog):
    first = _write(catalog, "e2", 3)
    (v1,) = _versions(catalog.store, "e2")
    with pytest.raises(errors.AlreadyExists):
        _write(catalog, "e2", 4, overwrite=False)
    assert _versions(catalog.store, "e2") == {v1}  # the refused writer left nothing
    second = _write(catalog, "e2", 4)
    (v2,) = _versions(catalog.store, "e2")
    assert v2 != v1 and catalog.embedding("e2").num_rows == 4 and catalog.verify(second.rows) and not catalog.verify(first.rows)


def test_eight_concurrent_writers_one_record_no_dangling_artifacts(catalog: cat.Catalog):
    started = threading.Barrier(8)
    outcomes: list[object] = [None] * 8

    def run(i: int) -> None:
        try:
            outcomes[i] = _write(catalog, "race", i + 1, started=started)
        except errors.Aborted as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    won = [o for o in outcomes if isinstance(o, embedding_pb2.EmbeddingSet)]
    assert won and sum(isinstance(o, errors.Aborted) for o in outcomes) == 8 - len(won), outcomes
    if isinstance(catalog.store, LocalStore):
        assert len(won) == 1  # S3 emulations may let a second writer through after the first (last one wins)
    rec = catalog.embedding("race")
    assert rec.num_rows in {w.num_rows for w in won} and catalog.verify(rec.rows) and catalog.verify(rec.features)
    assert _versions(catalog.store, "race") == catalog.versions_in(KIND, "race", catalog.store.get_bytes("embeddings/race/embedding.json"))


def test_crashed_writers_leftovers_are_swept_but_fresh_versions_in_flight_are_not(catalog: cat.Catalog):
    _write(catalog, "e3", 2)
    old = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() - 2 * cat.ORPHAN_AGE_SECONDS)) + "-0123abcd"
    fresh = cat.new_version()
    catalog.store.put_bytes(f"embeddings/e3/{old}/rows.npy", b"left by a crash")
    catalog.store.put_bytes(f"embeddings/e3/{fresh}/rows.npy", b"being written right now")
    _write(catalog, "e3", 3)
    left = _versions(catalog.store, "e3")
    assert old not in left and fresh in left and len(left) == 2
    assert catalog.delete(KIND, "e3")
    assert _versions(catalog.store, "e3") == {fresh}  # a delete does not pull a version from under its writer
    assert not catalog.exists(KIND, "e3") and not catalog.delete(KIND, "e3")
