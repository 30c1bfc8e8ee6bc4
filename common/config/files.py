"""Reading a settings file (--config, --search-space) as a user's file, not a trusted one: a regular file of
modest size, UTF-8, YAML (JSON is YAML too) without duplicate keys or alias bombs, mapping names to values."""

from __future__ import annotations

import json
from pathlib import Path

from common.errors import UserError, first_line

MAX_BYTES = 1_000_000  # a settings file is a few lines; /dev/zero or a log given by mistake is not read whole
MAX_VALUES = 100_000  # values a settings file may expand to: nested YAML aliases (*name) can make 455 bytes gigabytes


def _loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """yaml.SafeLoader that refuses a key given twice (the last would win silently)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) and key in seen:
                    raise yaml.YAMLError(f"the key '{key}' is given twice (line {key_node.start_mark.line + 1})")
                if isinstance(key, (str, int, float, bool)):
                    seen.add(key)
            return super().construct_mapping(node, deep)

    return yaml, StrictLoader


def _load_yaml(yaml, loader_class, text: str):
    """yaml.load, but the composed document's size with every alias expanded is counted first (the 'billion
    laughs': each alias shares a node, so the count is memoized per node) and refused over MAX_VALUES."""
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        sizes: dict[int, int] = {}

        def size(node) -> int:
            if id(node) not in sizes:
                sizes[id(node)] = 0  # a node that holds itself: counted once
                children = node.value if isinstance(node.value, list) else []
                flat = [part for child in children for part in (child if isinstance(child, tuple) else (child,))]
                sizes[id(node)] = 1 + sum(size(child) for child in flat)
            return sizes[id(node)]

        if size(node) > MAX_VALUES:
            raise yaml.YAMLError(f"it expands to over {MAX_VALUES} values (nested aliases, *name); write it out")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_mapping(path: str, flag: str, what: str) -> dict | None:
    """The file at `path` as a mapping (None for an empty file or one of only comments); one line naming the file
    and `flag` for anything else. `what` says what the mapping holds, for the message of a file that is not one."""
    file = Path(path)
    if file.is_dir():
        raise UserError(f"{flag} '{path}' is a folder; give a .yaml or .json file of {what}")
    if not file.exists():
        raise UserError(f"{flag} '{path}' does not exist; check the path")
    if not file.is_file():
        raise UserError(f"{flag} '{path}' is not a regular file (a pipe or a device); give a .yaml or .json file")
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as e:
        raise UserError(f"{flag} '{path}' cannot be read ({e.strerror or first_line(e)}); check the file") from None
    if len(raw) > MAX_BYTES:
        raise UserError(f"{flag} '{path}' is over {MAX_BYTES // 1_000_000} MB; a file of {what} is a few lines")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{flag} '{path}' is not valid UTF-8 (byte {e.start}); re-save it as UTF-8") from None
    is_json = file.suffix == ".json"
    yaml, loader = _loader()
    try:
        values = json.loads(text, object_pairs_hook=_no_duplicates) if is_json else _load_yaml(yaml, loader, text)
    except (ValueError, yaml.YAMLError, RecursionError) as e:
        reason = "nested too deeply" if isinstance(e, RecursionError) else first_line(e)
        raise UserError(f"{flag} '{path}' could not be read as {'JSON' if is_json else 'YAML'}: {reason}") from None
    if values is None:
        return None
    if not isinstance(values, dict):
        raise UserError(f"{flag} '{path}' must map names to values; it holds a {type(values).__name__}")
    bad = [key for key in values if not isinstance(key, str)]
    if bad:
        raise UserError(f"{flag} '{path}': the key {bad[0]!r} is not a name; keys are flag names (lr, batch_size, ...)")
    return values


def _no_duplicates(pairs: list) -> dict:
    keys = [key for key, _ in pairs]
    twice = next((key for key in keys if keys.count(key) > 1), None)
    if twice is not None:
        raise ValueError(f"the key '{twice}' is given twice")
    return dict(pairs)
