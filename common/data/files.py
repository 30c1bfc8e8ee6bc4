"""A user's data file as a pandas table: csv/tsv (tabs sniffed), json, jsonl, parquet, .txt or a folder of them,
with bad input refused in one line that names the file and the fix (binary, UTF-16, not UTF-8, wrong format)."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from common.errors import UserError, first_line

logger = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".json", ".jsonl", ".parquet")
TAB_SEPARATED = (".tsv", ".tab")
CORPUS_SUFFIXES = (".txt",)


def read_file(path: str | Path, flag: str = "--train-file", folders: bool = True) -> pd.DataFrame:
    """One file as a table. A .txt file, or (with `folders`) a folder of them, becomes one row per file
    (column `text`)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{flag} '{path}' does not exist; check the path")
    if path.is_dir() and not folders:
        raise UserError(
            f"{flag} '{path}' is a folder; give one table file ({' '.join(TABLE_SUFFIXES)}) with a text and a "
            f"label column"
        )
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        odd = [f for f in files if not f.is_file()]  # a named pipe would block the read for ever
        if odd:
            logger.warning("skipping %d entries of %s that are not regular files (%s, ...)", len(odd), path, odd[0])
            files = [f for f in files if f.is_file()]
        if not files:
            raise UserError(
                f"{flag} '{path}' is a folder with no .txt files in it; point it at a file or a folder of .txt files"
            )
        return pd.DataFrame({"text": [_read_text(f, flag) for f in files], "title": [f.stem for f in files]})
    if not path.is_file():
        raise UserError(f"{flag} '{path}' is not a regular file (a pipe or a device); save the data to a file")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES + CORPUS_SUFFIXES:
        supported = " ".join(TABLE_SUFFIXES + CORPUS_SUFFIXES)
        raise UserError(f"{flag} '{path}' has the unsupported extension '{path.suffix}'; use one of: {supported}")
    if suffix == ".txt":
        return pd.DataFrame({"text": [_read_text(path, flag)], "title": [path.stem]})
    start = _check_is_text(path, flag, suffix) if suffix != ".parquet" else b""
    try:
        if suffix in (".csv", *TAB_SEPARATED):  # every cell as written: labels are names (01 is not 1, None is not NA)
            separator = "\t" if suffix in TAB_SEPARATED or _tab_separated(start) else ","
            if separator == "\t" and suffix == ".csv":
                logger.info("%s '%s' has the same number of tabs on each line: reading it as tab-separated", flag, path)
            return pd.read_csv(path, sep=separator, encoding="utf-8", dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        table = pd.read_json(path, lines=suffix == ".jsonl", encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{flag} '{path}' is not valid UTF-8 (byte {e.start}); re-save it as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{flag} '{path}' is empty; it needs a header row and at least one data row") from None
    except PermissionError:
        raise UserError(f"{flag} '{path}' cannot be read (permission denied); check its permissions") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        if suffix == ".json" and "Trailing data" in str(e):
            raise UserError(
                f"{flag} '{path}' holds JSON lines (one object per line), not one JSON document; rename it to .jsonl"
            ) from None
        if suffix == ".csv" and "Expected" in str(e) and b"\t" in start:
            raise UserError(
                f"{flag} '{path}' could not be read as csv ({first_line(e)}) and has tabs in it: if it is "
                f"tab-separated, rename it to .tsv; if it is csv, quote fields that hold commas"
            ) from None
        raise UserError(
            f"{flag} '{path}' could not be read as {suffix[1:]} ({first_line(e)}); check its format"
        ) from None
    if not all(isinstance(column, str) for column in table.columns):
        raise UserError(
            f"{flag} '{path}' holds rows without column names (lists or bare values, not objects); give one "
            f'object per row, such as {{"text": "...", "label": "..."}}'
        )
    return table


def _tab_separated(start: bytes) -> bool:
    """A .csv that is tab-separated text (`start`: its first bytes): its first lines have the same number of tabs,
    at least one, and not the same number of commas (commas inside texts vary from line to line)."""
    lines = [line for line in start.decode("utf-8", "replace").splitlines()[:20] if line.strip()]
    tabs, commas = {line.count("\t") for line in lines}, {line.count(",") for line in lines}
    return len(tabs) == 1 and min(tabs) > 0 and not (len(commas) == 1 and min(commas) > 0)


def _check_is_text(path: Path, flag: str, suffix: str) -> bytes:
    """Refuse, before parsing, what cannot be this format: binary data, and a JSON array named .jsonl. Returns the
    file's first 64 KiB, which read_file also sniffs for tabs."""
    try:
        with path.open("rb") as f:
            start = f.read(65536)
    except OSError as e:
        raise UserError(f"{flag} '{path}' cannot be read ({e.strerror or first_line(e)}); check the file") from None
    odd, even = start[1::2], start[0::2]  # UTF-16 of Latin text: a zero byte beside each letter
    alternating = len(start) > 3 and odd.count(0) > len(start) // 4 and len(even) - even.count(0) > len(start) // 4
    if start.startswith((b"\xff\xfe", b"\xfe\xff")) or alternating:
        raise UserError(f"{flag} '{path}' is UTF-16 text; re-save it as UTF-8")
    if b"\x00" in start:
        raise UserError(
            f"{flag} '{path}' is binary (it holds NUL bytes), not {suffix[1:]} text; check that it is the right file"
        )
    if suffix == ".jsonl" and start.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"["):
        raise UserError(
            f"{flag} '{path}' holds one JSON array, not JSON lines (one object per line); rename it to .json"
        )
    return start


def _read_text(path: Path, flag: str) -> str:
    _check_is_text(path, flag, ".txt")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{flag} '{path}' is not valid UTF-8 (byte {e.start}); re-save it as UTF-8") from None
    except OSError as e:
        raise UserError(f"{flag} '{path}' cannot be read ({e.strerror or first_line(e)}); check the file") from None
