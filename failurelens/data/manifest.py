"""Dataset manifests.

A dataset is images (PNG/JPEG) in the artifact store, a *manifest* table and a class-name list.
The manifest (CSV or Parquet) has the required columns

* ``uri``   - the image: a key relative to the dataset's prefix (``train/cat/001.png``) or a full
  URI of the store (``s3://bucket/key``, ``file:///root/key``);
* ``label`` - a class index ``0..C-1`` or a class name from the class list;
* ``split`` - a non-empty string (``train``, ``val``, ``test``, anything);

and any number of extra columns, kept as per-sample metadata (they are what failure slices are
described with).

Rows are numbered from 0 (the first data row, under the CSV header, is row 0 = CSV line 2).

Label strings are resolved like this: if every label is a class name, all are names; otherwise
each label is a class name if it is one, else an integer index. A label that is both a class name
and an integer naming a *different* class (class names ``["1", "0"]``) is reported as ambiguous.
Integer (or integral float) columns are always indices.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import io
import json
import math
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from failurelens.data.errors import ValidationError, Violation, ViolationCollector

__all__ = [
    "REQUIRED_COLUMNS",
    "Manifest",
    "load_manifest",
    "validate_manifest",
    "validate_class_names",
    "manifest_from_directory",
    "resolve_image_keys",
    "check_images_exist",
    "load_class_names",
]

REQUIRED_COLUMNS = ("uri", "label", "split")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
PARQUET_MAGIC = b"PAR1"
#: Parquet schema metadata key holding the class names (JSON list) in :meth:`Manifest.to_parquet_bytes`.
CLASS_NAMES_METADATA_KEY = b"failurelens.class_names"
MANIFEST_VERSION_METADATA_KEY = b"failurelens.manifest_version"

# pandas' default NA spellings; applied to extra columns only (a class may be called "NA" or "None")
_NA_STRINGS = [
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
]
_INT_RE = re.compile(r"^[+-]?\d+$")
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


# --------------------------------------------------------------------------------------------
# the validated manifest
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Manifest:
    """A validated manifest.

    ``df`` has the columns ``uri`` (str), ``label`` (int64 class index), ``split`` (str), then
    the extra columns in their original order, and a 0-based ``RangeIndex`` (row number).
    """

    df: pd.DataFrame
    class_names: list[str]
    split_counts: dict[str, int]
    label_counts: list[int]  # indexed by class
    extra_columns: list[str]

    def __len__(self) -> int:
        return len(self.df)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def uris(self) -> list[str]:
        return self.df["uri"].tolist()

    @property
    def labels(self) -> np.ndarray:
        return self.df["label"].to_numpy(dtype=np.int64)

    def split_indices(self, split: str) -> np.ndarray:
        """Row numbers of ``split`` (ValidationError naming the known splits if absent)."""
        if split not in self.split_counts:
            raise ValidationError(f"the manifest has no split {split!r}; its splits are {sorted(self.split_counts)}")
        return np.flatnonzero((self.df["split"] == split).to_numpy())

    def to_parquet_bytes(self) -> bytes:
        """The manifest as Parquet; the class names travel in the schema metadata."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(self.df, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[CLASS_NAMES_METADATA_KEY] = json.dumps(self.class_names).encode()
        meta[MANIFEST_VERSION_METADATA_KEY] = b"1"
        table = table.replace_schema_metadata(meta)
        buf = io.BytesIO()
        pq.write_table(table, buf)
        return buf.getvalue()

    @classmethod
    def from_parquet_bytes(cls, data: bytes, class_names: Sequence[str] | None = None) -> Manifest:
        """Load and validate a Parquet manifest; class names come from its metadata unless given."""
        df = load_manifest(data, "parquet")
        names = class_names if class_names is not None else df.attrs.get("class_names")
        if names is None:
            raise ValidationError("the Parquet manifest carries no class names; pass the class list (classes.txt / class_names.json) with it")
        return validate_manifest(df, list(names))

    def summary(self) -> dict[str, Any]:
        return {
            "rows": len(self),
            "num_classes": self.num_classes,
            "splits": dict(self.split_counts),
            "label_counts": list(self.label_counts),
            "extra_columns": list(self.extra_columns),
        }


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------
def load_manifest(data: bytes, fmt: str | None = None) -> pd.DataFrame:
    """Parse a manifest (``fmt`` ``"csv"``, ``"parquet"`` or ``None`` to sniff) into a DataFrame.

    Only parsing happens here; :func:`validate_manifest` checks the content. In CSV the ``uri``,
    ``label`` and ``split`` columns are read as strings with only the empty field as missing
    (so a class called ``NA`` survives); extra columns get pandas' usual type inference.
    ``df.attrs["source_format"]`` records the format and, for a Parquet file written by
    :meth:`Manifest.to_parquet_bytes`, ``df.attrs["class_names"]`` the class list.
    """
    if isinstance(data, memoryview):
        data = data.tobytes()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"load_manifest takes bytes, not {type(data).__name__}")
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in ("csv", "parquet"):
            raise ValidationError(f"manifest format {fmt!r} is not supported; use 'csv' or 'parquet'")
    if not data:
        raise ValidationError("the manifest is empty (0 bytes); upload a CSV or Parquet file with columns uri,label,split")
    sniffed = "parquet" if bytes(data[:4]) == PARQUET_MAGIC else "csv"
    fmt = fmt or sniffed
    if fmt == "parquet":
        if sniffed != "parquet":
            raise ValidationError(
                "the manifest was declared as Parquet but does not start with the Parquet magic 'PAR1'; upload a Parquet file or declare it as CSV"
            )
        return _load_parquet(bytes(data))
    if sniffed == "parquet":
        raise ValidationError("the manifest was declared as CSV but is a Parquet file; declare it as Parquet")
    return _load_csv(bytes(data))


def _load_parquet(data: bytes) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ValidationError(f"the manifest is not a readable Parquet file: {e}; re-write it (e.g. df.to_parquet)") from None
    df = table.to_pandas()
    df.attrs["source_format"] = "parquet"
    meta = table.schema.metadata or {}
    if CLASS_NAMES_METADATA_KEY in meta:
        try:
            names = json.loads(meta[CLASS_NAMES_METADATA_KEY])
            if isinstance(names, list):
                df.attrs["class_names"] = names
        except ValueError:
            pass
    return df


def _load_csv(data: bytes) -> pd.DataFrame:
    if b"\x00" in data[:8192]:
        raise ValidationError("the manifest is binary data, not CSV or Parquet; upload a UTF-8 CSV or a Parquet file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValidationError(f"the CSV manifest is not valid UTF-8 (byte {e.start}: {data[e.start : e.start + 1]!r}); save it as UTF-8") from None
    first = text.splitlines()[0] if text.strip() else ""
    if not first.strip():
        raise ValidationError("the CSV manifest has no header line; its first line must be 'uri,label,split[,extra...]'")
    header = [h.strip() for h in next(csv.reader([first]))]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ValidationError(f"the CSV manifest header repeats column(s) {dupes}; give every column a unique name")
    na_values = {h: ([""] if h in REQUIRED_COLUMNS else _NA_STRINGS) for h in header}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            df = pd.read_csv(
                io.StringIO(text),
                dtype={c: str for c in REQUIRED_COLUMNS if c in header},
                keep_default_na=False,
                na_values=na_values,
                skipinitialspace=True,
                index_col=False,
            )
        except (pd.errors.ParserError, ValueError) as e:
            bad = _ragged_lines(text, len(header))
            if bad:
                raise _ragged_error(bad, len(header)) from None
            detail = " ".join(str(e).split())
            raise ValidationError(f"the CSV manifest cannot be parsed: {detail}; check quoting and field counts") from None
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        raise _ragged_error(_ragged_lines(text, len(header)), len(header))
    df.columns = [str(c).strip() for c in df.columns]
    df.attrs["source_format"] = "csv"
    return df


def _ragged_error(lines: list[int], n: int) -> ValidationError:
    return ValidationError(
        f"the CSV manifest has rows with more fields than its {n}-column header (CSV line(s) {lines}); quote fields that contain commas"
    )


def _ragged_lines(text: str, n: int, limit: int = 5) -> list[int]:
    out = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        if len(row) > n:
            out.append(lineno)
            if len(out) >= limit:
                break
    return out


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def validate_class_names(class_names: Any) -> list[str]:
    """Check the class list (non-empty, strings, non-blank, unique); returns it as a list."""
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Iterable):
        raise ValidationError(
            f"class_names must be a list of strings, not {type(class_names).__name__}",
            violation_count=1,
        )
    names = list(class_names)
    errs = ViolationCollector()
    if not names:
        errs.add("class_names", "the class list is empty; give one name per class, in label-index order")
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        if not isinstance(n, str):
            errs.add("class_names", f"class {i} is {n!r} ({type(n).__name__}); class names must be strings")
            continue
        if not n.strip():
            errs.add("class_names", f"class {i} has an empty name; every class needs a non-blank name")
            continue
        if n != n.strip() or any(ch in n for ch in "\r\n\t"):
            errs.add("class_names", f"class {i} name {n!r} has leading/trailing whitespace or control characters; trim it")
            continue
        if n in seen:
            errs.add("class_names", f"class name {n!r} appears twice (classes {seen[n]} and {i}); names must be unique")
            continue
        seen[n] = i
    errs.raise_if_any("invalid class list")
    return names


def _row_ref(i: int, source: str | None) -> str:
    return f"manifest row {i} (CSV line {i + 2})" if source == "csv" else f"manifest row {i}"


def validate_manifest(df: pd.DataFrame, class_names: Sequence[str]) -> Manifest:
    """Check a manifest against the class list and canonicalise it (see :class:`Manifest`).

    Raises :class:`ValidationError` listing every problem (up to 100 itemised, all counted).
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"validate_manifest takes a pandas DataFrame, not {type(df).__name__}")
    names = validate_class_names(class_names)
    num_classes = len(names)
    source = df.attrs.get("source_format")

    columns = [str(c) for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        hints = []
        lower = {c.lower().strip(): c for c in columns}
        for m in missing:
            if m in lower:
                hints.append(f"column {lower[m]!r} must be spelled {m!r} (names are case-sensitive)")
        msg = (
            f"the manifest is missing required column(s) {missing}; found columns {columns}; "
            f"a manifest needs the columns uri, label and split (extra columns are kept as metadata)"
        )
        if hints:
            msg += "; " + "; ".join(hints)
        raise ValidationError(msg, [Violation(field="manifest.columns", description=msg)])
    if len(df) == 0:
        raise ValidationError("the manifest has no rows; add one row per image (uri,label,split)")

    errs = ViolationCollector()

    # ---- uri -------------------------------------------------------------------------------
    uris_raw = df["uri"].tolist()
    uris: list[str | None] = []
    for i, u in enumerate(uris_raw):
        if _is_missing(u):
            errs.add("manifest.uri", f"{_row_ref(i, source)}: uri is empty; every row needs the image's key or URI", row=i)
            uris.append(None)
            continue
        u = str(u).strip()
        if not u:
            errs.add("manifest.uri", f"{_row_ref(i, source)}: uri is empty; every row needs the image's key or URI", row=i)
            uris.append(None)
            continue
        problem = _uri_problem(u)
        if problem:
            errs.add("manifest.uri", f"{_row_ref(i, source)}: uri {u!r} {problem}", row=i, uri=u)
        uris.append(u)
    first_seen: dict[str, int] = {}
    for i, u in enumerate(uris):
        if u is None:
            continue
        if u in first_seen:
            errs.add(
                "manifest.uri",
                f"{_row_ref(i, source)}: uri {u!r} duplicates row {first_seen[u]}; each image may appear once",
                row=i,
                uri=u,
            )
        else:
            first_seen[u] = i

    # ---- label -----------------------------------------------------------------------------
    labels, unknown = _resolve_labels(df["label"], names, errs, source, uris)

    # ---- split -----------------------------------------------------------------------------
    splits: list[str] = []
    for i, s in enumerate(df["split"].tolist()):
        if _is_missing(s) or not str(s).strip():
            errs.add(
                "manifest.split",
                f"{_row_ref(i, source)}: split is empty; give every row a split such as 'train', 'val' or 'test'",
                row=i,
                uri=uris[i],
            )
            splits.append("")
        else:
            splits.append(str(s).strip())

    if errs:
        summary = f"the manifest has {errs.count} problem(s)"
        if unknown:
            top = sorted(unknown.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            summary += " (unknown labels: " + ", ".join(f"{k!r} x{v}" for k, v in top) + ")"
        raise errs.error(summary)

    extras = [c for c in columns if c not in REQUIRED_COLUMNS]
    out = pd.DataFrame(
        {
            "uri": pd.Series(uris, dtype=object).astype(str),
            "label": pd.Series(labels, dtype=np.int64),
            "split": pd.Series(splits, dtype=object).astype(str),
        }
    )
    src_cols = list(df.columns)
    for c in extras:
        out[c] = df[src_cols[columns.index(c)]].reset_index(drop=True)
    out.attrs = {}
    label_counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).tolist()
    split_counts = {str(k): int(v) for k, v in pd.Series(splits).value_counts(sort=False).items()}
    split_counts = dict(sorted(split_counts.items()))
    return Manifest(df=out, class_names=names, split_counts=split_counts, label_counts=label_counts, extra_columns=extras)


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return False


def _uri_problem(u: str) -> str | None:
    from failurelens.store.base import InvalidKeyError, validate_key

    if _URI_RE.match(u):
        scheme = u.split("://", 1)[0].lower()
        if scheme not in ("s3", "file"):
            return f"has scheme {scheme!r}; use a key relative to the dataset, or an s3:// or file:// URI of the store"
        return None
    try:
        validate_key(u)
    except InvalidKeyError as e:
        return f"is not a valid object key ({e})"
    return None


def _resolve_labels(
    col: pd.Series,
    names: list[str],
    errs: ViolationCollector,
    source: str | None,
    uris: list[str | None],
) -> tuple[list[int], dict[str, int]]:
    num_classes = len(names)
    index_of = {n: i for i, n in enumerate(names)}
    unknown: dict[str, int] = {}
    values = col.tolist()
    rng = f"the class list has {num_classes} classes (0..{num_classes - 1})"

    str_values = [v.strip() for v in values if isinstance(v, str)]
    all_names = bool(str_values) and all(v in index_of for v in str_values)

    labels: list[int] = []
    for i, v in enumerate(values):
        where = _row_ref(i, source)
        uri = uris[i]
        label: int | None = None
        if _is_missing(v):
            errs.add("manifest.label", f"{where}: label is empty; give a class index 0..{num_classes - 1} or a class name", row=i, uri=uri)
        elif isinstance(v, (bool, np.bool_)):
            errs.add("manifest.label", f"{where}: label {v!r} is a boolean; give a class index or a class name", row=i, uri=uri)
        elif isinstance(v, (int, np.integer)):
            label = int(v)
        elif isinstance(v, (float, np.floating)):
            if float(v).is_integer():
                label = int(v)
            else:
                errs.add("manifest.label", f"{where}: label {v!r} is not an integer class index", row=i, uri=uri)
        elif isinstance(v, str):
            s = v.strip()
            as_int = int(s) if _INT_RE.match(s) else None
            if s in index_of:
                if not all_names and as_int is not None and as_int != index_of[s]:
                    errs.add(
                        "manifest.label",
                        f"{where}: label {s!r} is ambiguous: it is the name of class {index_of[s]} and also the "
                        f"index of class {as_int}; write all labels as class names or all as indices",
                        row=i,
                        uri=uri,
                    )
                else:
                    label = index_of[s]
            elif as_int is not None:
                label = as_int
            elif not s:
                errs.add("manifest.label", f"{where}: label is empty; give a class index 0..{num_classes - 1} or a class name", row=i, uri=uri)
            else:
                unknown[s] = unknown.get(s, 0) + 1
                if len(errs.violations) < errs.limit:  # the suggestion costs; only for kept violations
                    close = difflib.get_close_matches(s, names, n=3, cutoff=0.6)
                    hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
                    sample = ", ".join(repr(c) for c in names[:5]) + (", ..." if num_classes > 5 else "")
                    desc = (
                        f"{where}: label {s!r} is not a class name nor a class index; {hint}"
                        f"the {num_classes} classes are {sample}; fix the label or add the class to the class list"
                    )
                else:
                    desc = f"{where}: unknown label {s!r}"
                errs.add("manifest.label", desc, row=i, uri=uri)
        else:
            errs.add(
                "manifest.label",
                f"{where}: label {v!r} has type {type(v).__name__}; give a class index or a class name",
                row=i,
                uri=uri,
            )
        if label is not None and not 0 <= label < num_classes:
            errs.add("manifest.label", f"{where}: label {label} is out of range; {rng}", row=i, uri=uri)
            label = None
        labels.append(-1 if label is None else label)
    return labels, unknown


# --------------------------------------------------------------------------------------------
# store helpers
# --------------------------------------------------------------------------------------------
def resolve_image_keys(manifest: Manifest, store: Any, prefix: str = "") -> list[str]:
    """Store keys of the manifest's images: relative uris are joined to ``prefix``; full URIs
    must belong to ``store`` (ValidationError otherwise)."""
    from failurelens.store.base import InvalidKeyError, validate_key

    if prefix and not prefix.endswith("/"):
        prefix += "/"
    errs = ViolationCollector()
    keys: list[str] = []
    for i, u in enumerate(manifest.uris):
        try:
            key = store.key_from_uri(u) if _URI_RE.match(u) else validate_key(prefix + u)
        except InvalidKeyError as e:
            errs.add("manifest.uri", f"manifest row {i}: uri {u!r} cannot be used with this store: {e}", row=i, uri=u)
            key = ""
        keys.append(key)
    errs.raise_if_any("some manifest uris do not name objects of the artifact store")
    return keys


def check_images_exist(manifest: Manifest, store: Any, prefix: str = "") -> list[str]:
    """Resolve the image keys and check that every object exists; returns the keys."""
    keys = resolve_image_keys(manifest, store, prefix)
    common = os.path.commonprefix(keys)
    common = common[: common.rfind("/") + 1]
    if common or len(keys) > 256:
        existing = {o.key for o in store.list(common)}
        present = [k in existing for k in keys]
    else:
        present = [store.exists(k) for k in keys]
    errs = ViolationCollector()
    for i, (k, ok) in enumerate(zip(keys, present)):
        if not ok:
            errs.add(
                "manifest.uri",
                f"manifest row {i}: image {manifest.uris[i]!r} not found in the store (key {k!r}); upload it or fix the uri",
                row=i,
                uri=store.uri(k),
            )
    errs.raise_if_any("images named by the manifest are missing")
    return keys


# --------------------------------------------------------------------------------------------
# a dataset directory (for the CLI)
# --------------------------------------------------------------------------------------------
def parse_class_names(data: bytes, source: str = "class_names_uri") -> list[str]:
    """A class list from a file's bytes: a JSON list (or ``{"class_names": [...]}``) or one name
    per line (blank lines ignored). ``source`` names the file (or request field) in errors."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError(f"{source}: the class names file is not UTF-8 text; save the class list as UTF-8", field=source) from None
    if text.lstrip().startswith(("[", "{")):
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise ValidationError(f"{source}: the class names file is not valid JSON ({e}); it must be a list of class names", field=source) from None
        if isinstance(obj, dict) and "class_names" in obj:
            obj = obj["class_names"]
        if not isinstance(obj, list):
            raise ValidationError(f'{source} must hold a JSON list of class names (or {{"class_names": [...]}})', field=source)
        return validate_class_names(obj)
    return validate_class_names([line.strip() for line in text.splitlines() if line.strip()])


def load_class_names(path: str | os.PathLike[str]) -> list[str]:
    """Read ``classes.txt`` (one name per line, blank lines ignored) or ``class_names.json``
    (a list, or ``{"class_names": [...]}``)."""
    p = Path(path)
    return parse_class_names(p.read_bytes(), str(p))


def manifest_from_directory(directory: str | os.PathLike[str]) -> tuple[pd.DataFrame, list[str]]:
    """Build ``(manifest DataFrame, class_names)`` from a local dataset directory.

    Two layouts are accepted:

    * ``manifest.csv`` or ``manifest.parquet`` plus ``classes.txt`` or ``class_names.json``
      (a Parquet manifest written by :meth:`Manifest.to_parquet_bytes` may omit the class list);
      relative uris must name files under the directory;
    * an ImageFolder tree ``<split>/<class_name>/<image>.png|.jpg|.jpeg``: class names are the
      class folder names of all splits, sorted; labels are their indices.

    ``uri`` values are ``/``-separated paths relative to ``directory``. The result still has to
    go through :func:`validate_manifest`.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise ValidationError(f"{root} is not a directory")
    manifests = [root / n for n in ("manifest.csv", "manifest.parquet") if (root / n).is_file()]
    class_files = [root / n for n in ("classes.txt", "class_names.json") if (root / n).is_file()]
    if len(manifests) > 1:
        raise ValidationError(f"{root} has both manifest.csv and manifest.parquet; keep only one")
    if manifests:
        if len(class_files) > 1:
            raise ValidationError(f"{root} has both classes.txt and class_names.json; keep only one")
        mpath = manifests[0]
        df = load_manifest(mpath.read_bytes(), "csv" if mpath.suffix == ".csv" else "parquet")
        if class_files:
            names = load_class_names(class_files[0])
        elif "class_names" in df.attrs:
            names = validate_class_names(df.attrs["class_names"])
        else:
            raise ValidationError(
                f"{root} has {mpath.name} but no class list; add classes.txt (one class name per line, in label-index order) or class_names.json"
            )
        if "uri" in df.columns:
            errs = ViolationCollector()
            for i, u in enumerate(df["uri"].tolist()):
                if _is_missing(u) or _URI_RE.match(str(u)) or not str(u).strip():
                    continue
                if not (root / str(u).strip()).is_file():
                    errs.add("manifest.uri", f"manifest row {i}: {str(u).strip()!r} is not a file under {root}", row=i, uri=str(u))
            errs.raise_if_any(f"images named by {mpath.name} are missing")
        return df, names

    # ImageFolder layout
    rows: list[tuple[str, str, str]] = []
    class_set: set[str] = set()
    stray: list[str] = []
    for split_dir in sorted(p for p in root.iterdir() if not p.name.startswith(".")):
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if not p.name.startswith(".")):
            if not class_dir.is_dir():
                if class_dir.suffix.lower() in IMAGE_EXTENSIONS:
                    stray.append(class_dir.relative_to(root).as_posix())
                continue
            class_set.add(class_dir.name)
            for f in sorted(class_dir.rglob("*")):
                if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS and not any(part.startswith(".") for part in f.relative_to(root).parts):
                    rows.append((f.relative_to(root).as_posix(), class_dir.name, split_dir.name))
    if not rows:
        extra = f" (images directly under a split folder, e.g. {stray[0]!r}, need a class folder)" if stray else ""
        raise ValidationError(
            f"found no dataset in {root}{extra}; expected either manifest.csv|manifest.parquet with "
            f"classes.txt|class_names.json, or an ImageFolder tree <split>/<class_name>/*.png|*.jpg"
        )
    names = sorted(class_set)
    index_of = {n: i for i, n in enumerate(names)}
    rows.sort()
    df = pd.DataFrame(
        {
            "uri": [r[0] for r in rows],
            "label": np.array([index_of[r[1]] for r in rows], dtype=np.int64),
            "split": [r[2] for r in rows],
        }
    )
    df.attrs["source_format"] = "directory"
    return df, names
