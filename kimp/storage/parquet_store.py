"""A Parquet store laid out as ``{base}/{table}/{partition}.parquet``.

Writes are atomic: a reader sees either the previous complete file or the new complete file, never a
half-written one.
- Local folders: write ``.{name}.tmp-<uuid>`` in the same folder, fsync, then ``os.replace`` (atomic
  rename on POSIX). The temporary name does not end in ``.parquet``, so globs never see it.
- ``s3://``: an S3 object appears only when its (multipart) upload completes, so one PUT is atomic; a
  killed upload leaves the previous object untouched.
Unpartitioned tables use the partition name ``all``.

Staging (``stage=<run id>``): a run that must write all of its outputs or none (``kimp`` command runs) writes
them under ``{base}/.staging/{run id}/{table}/{partition}.parquet`` and reads its own staged outputs first;
``commit(run id)`` then moves them into place (one atomic rename each, locally) once the run has succeeded,
and ``discard(run id)`` drops them when it has failed, so a failing run never replaces any stored partition.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import polars as pl
import pyarrow.parquet as pq

log = logging.getLogger(__name__)

UNPARTITIONED = "all"
STAGING = ".staging"  # hidden: never a table, never globbed as one


@dataclass
class ParquetStore:
    base_uri: str
    storage_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base_uri = self.base_uri.rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.base_uri, **self.storage_options)
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.scheme = protocols[0]
        self.is_local = "file" in protocols

    # -- layout ---------------------------------------------------------------------------------
    def table_dir(self, table: str) -> str:
        return f"{self._root}/{table}"

    def path(self, table: str, partition: str | None, stage: str | None = None) -> str:
        base = self._root if stage is None else self.stage_dir(stage)
        return f"{base}/{table}/{partition or UNPARTITIONED}.parquet"

    def stage_dir(self, stage: str) -> str:
        return f"{self._root}/{STAGING}/{stage}"

    def uri(self, table: str, partition: str | None) -> str:
        """Full URI (with scheme for remote stores) of one partition file."""
        p = self.path(table, partition)
        return p if self.is_local else f"{self.scheme}://{p}"

    # -- io -------------------------------------------------------------------------------------
    def write(
        self, table: str, partition: str | None, frame: pl.DataFrame, *, stage: str | None = None
    ) -> str:
        """Write one partition atomically (under ``stage`` when given) and return its path."""
        target = self.path(table, partition, stage)
        arrow = frame.to_arrow()
        if self.is_local:
            folder = Path(target).parent
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{Path(target).name}.tmp-{uuid.uuid4().hex}"
            try:
                with open(tmp, "wb") as fh:
                    pq.write_table(arrow, fh, compression="zstd")
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            finally:
                if tmp.exists():  # only when the write failed before the rename
                    tmp.unlink()
        else:
            self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(target, "wb") as fh:
                pq.write_table(arrow, fh, compression="zstd")
        log.debug("wrote %s rows to %s", frame.height, target)
        return target

    def exists(self, table: str, partition: str | None, stage: str | None = None) -> bool:
        return self.fs.exists(self.path(table, partition, stage))

    def read(self, table: str, partition: str | None, stage: str | None = None) -> pl.DataFrame:
        target = self.path(table, partition, stage)
        with self.fs.open(target, "rb") as fh:
            return pl.from_arrow(pq.read_table(fh))  # type: ignore[return-value]

    def read_many(
        self, table: str, partitions: Iterable[str], *, allow_missing: bool = False
    ) -> pl.DataFrame:
        """Concatenate several partitions (in the order given). Missing ones raise unless allowed."""
        frames, missing = [], []
        for part in partitions:
            if self.exists(table, part):
                frames.append(self.read(table, part))
            else:
                missing.append(part)
        if missing and not allow_missing:
            shown = ", ".join(missing[:5]) + (f" ... (+{len(missing) - 5} more)" if len(missing) > 5 else "")
            raise FileNotFoundError(
                f"table {table!r}: partitions {shown} are not materialized under {self.base_uri}; "
                "materialize them first (kimp materialize --start ... --end ...)"
            )
        if not frames:
            raise FileNotFoundError(
                f"table {table!r}: none of the requested partitions exist under {self.base_uri}"
            )
        return pl.concat(frames, how="vertical_relaxed")

    # -- staging --------------------------------------------------------------------------------
    def staged(self, stage: str) -> list[tuple[str, str]]:
        """(table, partition file name) of every output staged under ``stage``."""
        files = self.fs.glob(f"{self.stage_dir(stage)}/*/*.parquet")
        return sorted((f.rsplit("/", 2)[-2], f.rsplit("/", 1)[-1].removesuffix(".parquet")) for f in files)

    def commit(self, stage: str) -> list[str]:
        """Move every output staged under ``stage`` into place; returns the paths written."""
        written = []
        for table, partition in self.staged(stage):
            source, target = self.path(table, partition, stage), self.path(table, partition)
            if self.is_local:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                os.replace(source, target)  # same file system: atomic
            else:
                self.fs.makedirs(self.table_dir(table), exist_ok=True)
                self.fs.mv(source, target)  # an object appears whole when its copy completes
            written.append(target)
        self.discard(stage)
        log.debug("committed %d staged partitions of %s", len(written), stage)
        return written

    def discard(self, stage: str) -> list[tuple[str, str]]:
        """Drop everything staged under ``stage`` (nothing stored changes); returns what was dropped."""
        dropped = self.staged(stage)
        if self.fs.exists(self.stage_dir(stage)):
            self.fs.rm(self.stage_dir(stage), recursive=True)
        return dropped

    def stages(self) -> list[str]:
        """Stages (run ids) with outputs not yet committed or discarded."""
        root = f"{self._root}/{STAGING}"
        if not self.fs.exists(root):
            return []
        return sorted(e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(root, detail=False))

    def tables(self) -> list[str]:
        """Tables that have at least one materialized partition."""
        if not self.fs.exists(self._root):
            return []
        out = []
        for entry in self.fs.ls(self._root, detail=True):
            name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("."):  # the staging area
                continue
            if entry["type"] == "directory" and self.fs.glob(f"{entry['name']}/*.parquet"):
                out.append(name)
        return sorted(out)

    def partitions(self, table: str) -> list[str]:
        files = self.fs.glob(f"{self.table_dir(table)}/*.parquet")
        return sorted(f.rsplit("/", 1)[-1].removesuffix(".parquet") for f in files)
