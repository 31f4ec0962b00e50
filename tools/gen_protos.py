#!/usr/bin/env python
"""Regenerate the Python code of the failurelens.v1 API from protos/ (the one command).

    python tools/gen_protos.py          # rewrite failurelens/v1/*_pb2*.py(i)
    python tools/gen_protos.py --check  # exit 1 if the checked-in code is stale (CI)

Generated files are never edited by hand.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_ROOT = ROOT / "protos"
PACKAGE = "failurelens/v1"
OUT_DIR = ROOT / PACKAGE
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _include_dirs() -> list[str]:
    import grpc_tools

    dirs = [str(PROTO_ROOT), str(Path(grpc_tools.__file__).parent / "_proto")]
    # google/rpc/*.proto ship with googleapis-common-protos
    import google.rpc

    dirs.append(str(Path(google.rpc.__path__[0]).parent.parent))
    return dirs


def generate(out_root: Path) -> list[Path]:
    from grpc_tools import protoc

    protos = sorted((PROTO_ROOT / PACKAGE).glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PACKAGE}")
    args = ["grpc_tools.protoc"]
    args += [f"-I{d}" for d in _include_dirs()]
    args += [f"--python_out={out_root}", f"--pyi_out={out_root}", f"--grpc_python_out={out_root}"]
    args += [str(p.relative_to(PROTO_ROOT)) for p in protos]
    rc = protoc.main(args)
    if rc != 0:
        raise SystemExit(f"protoc failed with exit code {rc}")
    return sorted(p for p in (out_root / PACKAGE).iterdir() if p.name.endswith(GENERATED_SUFFIXES))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="fail if checked-in generated code differs")
    ns = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        fresh_names = {p.name for p in fresh}
        current = {p.name for p in OUT_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
        if ns.check:
            stale = sorted(n for n in fresh_names if n not in current or not filecmp.cmp(Path(tmp) / PACKAGE / n, OUT_DIR / n, shallow=False))
            extra = sorted(current - fresh_names)
            if stale or extra:
                print("generated code is stale; run: python tools/gen_protos.py", file=sys.stderr)
                for n in stale:
                    print(f"  differs or missing: {PACKAGE}/{n}", file=sys.stderr)
                for n in extra:
                    print(f"  no longer generated: {PACKAGE}/{n}", file=sys.stderr)
                return 1
            print(f"generated code is up to date ({len(fresh_names)} files)")
            return 0
        for n in sorted(current - fresh_names):
            os.remove(OUT_DIR / n)
        for p in fresh:
            shutil.copyfile(p, OUT_DIR / p.name)
        print(f"wrote {len(fresh)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
