"""Bytes and values to text: a dataset file's encoding (detected or named), a field's value as plain text, a TOML
file read with a one-line error."""

from __future__ import annotations

import codecs
import tomllib
from pathlib import Path
from typing import Any

from eval.data.errors import DataError

# Without an encoding given: strict UTF-8, else strict GB18030, the superset of GBK and GB2312 in which Chinese
# datasets otherwise come. Kept over a guessing library: with each of CMMLU clinical_knowledge's 237 questions alone
# in GB18030, this rule decodes every one, while charset-normalizer 3.5 finds no encoding or cp874 for 11. And UTF-8
# Chinese mixed with ASCII almost never decodes as GB18030 (three-byte characters leave a byte unpaired before the
# next ASCII one), so a corrupt UTF-8 file fails both and is named, not misread.
DETECT = ("utf-8", "gb18030")


def encodings(encoding: str | None) -> tuple[str, ...]:
    """The codecs to try, in order: DETECT for None, else the one named ("gbk") or several comma-joined."""
    if encoding is None:
        return DETECT
    names = []
    for name in (n.strip() for n in encoding.split(",")):
        try:
            "".encode(name)  # a LookupError for unknown names and for bytes-to-bytes codecs such as base64
        except LookupError:
            raise DataError(
                f"--encoding {encoding}: {name!r} is not a text encoding (e.g. utf-8, gb18030, big5)"
            ) from None
        names.append(codecs.lookup(name).name)
    return tuple(dict.fromkeys(names))


def decode(file: Path, tried: tuple[str, ...] = DETECT) -> tuple[str, str]:
    """The file's text, and the first of `tried` that decodes all of it."""
    try:
        data = file.read_bytes()
    except OSError as e:
        raise DataError(f"{file}: cannot read ({e.strerror})") from None
    errors = []
    for name in tried:
        try:
            return data.decode(name).removeprefix("\ufeff"), name  # spreadsheet exports often start with a BOM
        except UnicodeDecodeError as e:
            errors.append(f"{name}: {e.reason} at byte {e.start}")
    tried_text = " or ".join(tried)
    raise DataError(f"{file}: cannot decode as {tried_text} ({'; '.join(errors)}); name its encoding with --encoding")


def plain(value: Any) -> str:
    """A field's value as stripped text; a missing one (None) as ""."""
    return "" if value is None else str(value).strip()


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid TOML ({e})") from None
