"""Objects named by `module:name` or `path/to/file.py:name`: users' probes and model factories.

A file is imported once per process under a name derived from its resolved path, so the same
file named twice gives the same classes. Errors are one line that name the reference.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

from grokscope.errors import UsageError


def is_spec(text: str) -> bool:
    return ":" in text and not text.startswith(":") and not text.endswith(":")


def load_object(ref: str, what: str = "object") -> Any:
    """The object `ref` names. `what` ("probe", "model factory") words the errors."""
    target, _, name = ref.rpartition(":")
    if not target or not name:
        raise UsageError(f"{what} {ref!r} must be module:name or path/to/file.py:name")
    if target.endswith(".py") or "/" in target:
        path = Path(target)
        if not path.is_file():
            raise UsageError(f"{what} file {path} does not exist")
        mod_name = "grokscope_user_" + hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
        module = sys.modules.get(mod_name)
        if module is None:
            spec_obj = importlib.util.spec_from_file_location(mod_name, path)
            module = importlib.util.module_from_spec(spec_obj)
            sys.modules[mod_name] = module
            try:
                spec_obj.loader.exec_module(module)
            except Exception as e:
                del sys.modules[mod_name]
                raise UsageError(f"{what} file {path} failed to import: {type(e).__name__}: {e}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise UsageError(f"cannot import {what} module {target!r}: {e}") from None
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"{target} has no {part!r} (from {what} {ref!r})")
        obj = getattr(obj, part)
    return obj


def spec_of(obj: Any) -> str:
    """The reference that names `obj` again in another process: `module:qualname`, or the script's
    path when it lives in `__main__` (the script must guard its training with
    `if __name__ == "__main__":`, since importing it runs its top level)."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if module is None or qualname is None or "<" in qualname:
        raise UsageError(f"{obj!r} has no importable name (a lambda or a local function?); define it at "
                         "the top level of a module or script")
    if module == "__main__":
        main = sys.modules["__main__"]
        path = getattr(main, "__file__", None)
        if path is None:
            raise UsageError(f"{qualname} is defined in an interactive session; put it in a module or script "
                             "file so that grokscope can build the model again")
        return f"{Path(path).resolve()}:{qualname}"
    return f"{module}:{qualname}"
