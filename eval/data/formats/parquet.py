"""Parquet, as Hugging Face datasets ship CMB, CMExam and MedQA (and any table with a question bank's headers): a
file kind only; its rows are read as the format its columns show (or with --map), row i named FILE[i]."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from eval.data.errors import DataError
from eval.data.records import Format, Rows


def _value(value: Any) -> Any:
    """A map column reads as [(key, value), …], options in some datasets as [{"key": …, "value": …}, …]: both as the
    mapping they are."""
    if isinstance(value, list) and value:
        if all(isinstance(x, tuple) and len(x) == 2 for x in value):
            return dict(value)
        if all(isinstance(x, dict) and x.keys() == {"key", "value"} for x in value):
            return {x["key"]: x["value"] for x in value}
    return value


def rows(file: Path, text: Callable[[], str]) -> Rows:
    import pyarrow as pa  # imported here: only a Parquet file pays for it
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(file)
        columns = table.schema_arrow.names
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(f"{file}: not a readable Parquet file ({e})") from None

    def records() -> Iterator[tuple[str, Any]]:
        i = 0
        try:
            for batch in table.iter_batches():  # in batches: a large split is never all in memory as Python objects
                for row in batch.to_pylist():
                    yield f"{file}[{i}]", {k: _value(v) for k, v in row.items()}
                    i += 1
        except (OSError, ValueError, pa.ArrowException) as e:
            raise DataError(f"{file}[{i}]: not readable Parquet ({e})") from None

    return Rows(records(), columns, str(file), "columns")


FORMAT = Format(name="parquet", describe="Parquet", suffixes=(".parquet",), reader=rows)
