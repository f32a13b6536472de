"""The repository stands on its own: no tracked file points at a document outside it.

The contracts live in docs/design.md; a reference to a design document beside the
checkout (a parent folder's copy, or sections of an outside design file) cannot be
followed by someone who has only the repository.
"""

import os
import re
import subprocess

from conftest import REPO


# Built from pieces so that this file does not match its own patterns.
_PARENT = re.escape("." + "./")
_DESIGN = "DES" + "IGN"
OUTSIDE_REFERENCES = {
    "a path into a folder beside the repository": re.compile(_PARENT + "shar" + "ed"),
    "the outside design document": re.compile(r"\b" + _DESIGN + r"(\.md)?\b"),
}


def _tracked_text_files():
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True)
    for path in listing.stdout.decode().split("\0"):
        if not path:
            continue
        try:
            with open(os.path.join(REPO, path), encoding="utf-8") as f:
                yield path, f.read()
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary files (weights, pictures); deleted but not yet staged


def find_outside_references(files):
    """``[(path, line number, what, line)]`` for every outside reference in ``files``."""
    found = []
    for path, text in files:
        for number, line in enumerate(text.splitlines(), 1):
            for what, pattern in OUTSIDE_REFERENCES.items():
                if pattern.search(line):
                    found.append((path, number, what, line.strip()))
    return found


def test_the_patterns_find_outside_references():
    parent = "." + "./" + "shared/"
    samples = [
        ("a.py", f"Contract: ``{parent}{_DESIGN}.md`` section 3.7."),
        ("b.md", f"as {_DESIGN} §6 asks"),
        ("c.cc", f"// Semantics: {parent}notes.txt"),
        ("d.py", "see docs/design.md §6; weights shared by steps"),
    ]
    found = {(path, what) for path, _, what, _ in find_outside_references(samples)}
    assert found == {
        ("a.py", "a path into a folder beside the repository"),
        ("a.py", "the outside design document"),
        ("b.md", "the outside design document"),
        ("c.cc", "a path into a folder beside the repository"),
    }


def test_no_tracked_file_refers_outside_the_repository():
    files = list(_tracked_text_files())
    paths = {path for path, _ in files}
    assert "docs/design.md" in paths and "tests/test_repository.py" in paths
    found = find_outside_references(files)
    assert not found, "references outside the repository (point to docs/design.md instead):\n" + \
        "\n".join(f"{path}:{number}: {what}: {line}" for path, number, what, line in found)


def _strings(value):
    """Every string inside a JSON value."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def _absolute_paths(value):
    """The strings of ``value`` that are absolute paths (POSIX, home or Windows drive)."""
    return [s for s in _strings(value) if re.match(r"(/|~|[A-Za-z]:[\\/])", s)]


def test_bundled_manifest_holds_no_absolute_path():
    import json

    from spiritnet_tf.config import DEFAULT_MANIFEST

    assert _absolute_paths({"a": ["/x/data/v.mp4#3", "data/v.mp4", "C:\\x", "~/y", "5 px"]}) == [
        "/x/data/v.mp4#3", "C:\\x", "~/y"]  # the check finds what it looks for
    with open(DEFAULT_MANIFEST) as f:
        manifest = json.load(f)
    assert _absolute_paths(manifest) == [], "MANIFEST.json must record paths relative to the repository"
    paths = [s["path"] for s in manifest["training"]["config"]["train_data"] if s.get("path")]
    assert paths and all(p.startswith("data/") for p in paths)  # the repository's data folder
