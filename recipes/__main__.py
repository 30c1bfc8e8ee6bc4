"""`python -m recipes` (or `make recipes`): every recipe with the first line of its docstring."""

import ast
from pathlib import Path

for path in sorted(Path(__file__).parent.glob("*.py")):
    if not path.name.startswith("_"):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        print(f"recipes/{path.name:<28} {doc.splitlines()[0] if doc else ''}")
