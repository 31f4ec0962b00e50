"""What every command that talks to the stack needs: a client and the artifact store."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from failurelens.clients import FailureLensClient
from failurelens.store import ArtifactStore, open_store


def client(ns: argparse.Namespace) -> FailureLensClient:
    token = Path(ns.token_file).read_text().strip() if ns.token_file else None
    return FailureLensClient.from_stack(ns.state_dir, token=token)


def store(ns: argparse.Namespace, c: Any) -> ArtifactStore:
    return open_store(ns.store or c.store_uri or None)
