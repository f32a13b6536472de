"""Writes one benchmark's section of docs/benchmarks.md and collects machine facts.

Each benchmark owns the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->``; rerunning it replaces only that section.
"""

import datetime
import os
import platform
import re


def machine_description():
    """One line naming the machine: CPU model, cores visible, memory, TF version."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem_gib = int(line.split()[1]) / 2**20
                    break
    except OSError:
        pass
    import tensorflow as tf

    mem = f", {mem_gib:.0f} GiB RAM" if mem_gib else ""
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}, TensorFlow {tf.__version__}"


def today():
    return datetime.date.today().isoformat()


def update_section(path, name, markdown):
    """Replaces (or appends) the section ``name`` of the Markdown file at ``path``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{markdown.strip()}\n{end}"
    text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)
