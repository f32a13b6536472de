"""The ``spiritnet`` entry point: quiet by default, quick help, lazy package, signals."""

import json
import os
import subprocess
import sys

import pytest
from PIL import Image

from spiritnet_tf import cli

from conftest import REPO

EXAMPLE = os.path.join(REPO, "examples", "coffee.jpg")


def _env(**changes):
    """The environment of a fresh shell: none of the suite's TensorFlow settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    env.update(changes)
    return env


def _python(code, **env):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=_env(**env), timeout=300)


def test_help_and_argument_errors_do_not_import_tensorflow():
    code = """
import json, sys
import spiritnet_tf, spiritnet_tf.cli as cli
seen = {"import": "tensorflow" in sys.modules}
for argv in (["--help"], ["animate", "--help"], ["train", "--help"], ["evaluate", "--help"],
             ["animate", "x.jpg"], ["animate", "x.jpg", "-o", "y.gif", "--frames", "many"],
             ["train", "--strategy", "tpu", "--config", "c.json"], ["data", "--help"],
             ["data", "synthetic", "many", "--out", "d"], ["serve", "--help"],
             ["predict", "--help"], ["predict", "x.jpg", "-o", "y.gif", "--quality", "0"],
             ["evaluate-depth", "--help"], ["ui", "--help"], ["ui", "--port", "0"],
             ["nonsense"]):
    try:
        cli.main(argv)
    except SystemExit as e:
        seen[" ".join(argv)] = (e.code, "tensorflow" in sys.modules, "keras" in sys.modules)
seen["gradio"] = "gradio" in sys.modules
print(json.dumps(seen))
"""
    run = _python(code)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen.pop("import") is False
    assert seen.pop("gradio") is False  # `spiritnet ui --help` does not import it either
    assert seen.pop("--help")[0] == 0
    for argv, (code_, tensorflow, keras) in seen.items():
        assert (tensorflow, keras) == (False, False), argv
        assert code_ == (0 if argv.endswith("--help") else 2), argv
    assert "--frames: expected a whole number" in run.stderr and "invalid choice: 'tpu'" in run.stderr
    assert "argument count: invalid int value: 'many'" in run.stderr
    assert "--quality: expected a whole number >= 1 and <= 100, got '0'" in run.stderr
    assert "--port: expected a whole number >= 1 and <= 65535, got '0'" in run.stderr
    # Every command is listed by `spiritnet --help` without importing its module.
    for name in cli.COMMANDS:
        assert name in run.stdout


def test_command_table_matches_the_modules():
    parser = cli.build_parser()  # every module imported
    subparsers = next(a for a in parser._actions if a.dest == "command")
    helps = {a.dest: a.help for a in subparsers._choices_actions}
    assert helps == {name: text for name, (_, text) in cli.COMMANDS.items()}
    for name, (module, _) in cli.COMMANDS.items():
        sub = subparsers.choices[name]
        funcs = [sub.get_default("func")] if sub.get_default("func") else [
            p.get_default("func") for a in sub._actions if a.dest == "data_command"
            for p in a.choices.values()]
        assert funcs and all(f.__module__ == module for f in funcs), name


def test_lazy_package_names():
    import spiritnet_tf

    from spiritnet_tf.model import SpiritNet

    assert spiritnet_tf.SpiritNet is SpiritNet
    assert {"SpiritNet", "animate", "Animation", "layers"} <= set(dir(spiritnet_tf))
    with pytest.raises(AttributeError, match="no attribute 'Spiritnet'"):
        spiritnet_tf.Spiritnet  # noqa: B018


def test_keras_backend_checked_at_first_use(monkeypatch):
    import keras

    import spiritnet_tf

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.delitem(vars(spiritnet_tf), "Animation", raising=False)  # not resolved yet
    with pytest.raises(ImportError, match="needs the TensorFlow Keras backend, but Keras is using 'jax'"):
        spiritnet_tf.Animation  # noqa: B018


def test_cli_stderr_holds_no_tensorflow_log_line(tmp_path):
    """A whole `spiritnet animate` run (bundled weights) in a fresh process and shell."""
    out = tmp_path / "coffee.gif"
    run = subprocess.run(
        [sys.executable, "-m", "spiritnet_tf.cli", "animate", EXAMPLE, "-o", str(out),
         "--frames", "1", "--working-side", "48"],
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
    assert run.returncode == 0, run.stderr
    assert out.exists() and "wrote" in run.stdout
    with Image.open(out) as gif:  # whole, though the process ends with os._exit (`cli.run`)
        assert gif.n_frames == 2
        gif.seek(1)
        gif.load()
    lines = [line for line in run.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert not [line for line in lines if cli.TF_LOG_LINE.match(line)], run.stderr
    # What is left is the progress bars: the model's steps, then the one output's frames.
    assert all(line.startswith(("coffee.jpg: model:", "coffee.gif:")) for line in lines), run.stderr
    assert any(line.startswith("coffee.jpg: model: 100%") and "1/1" in line for line in lines), run.stderr


def test_run_exits_with_main_s_status_and_message(tmp_path):
    """`cli.run` (the `spiritnet` script) ends an animate process with os._exit: the exit
    status and the message are still the ones `main` gives."""
    run = subprocess.run(
        [sys.executable, "-m", "spiritnet_tf.cli", "animate", str(tmp_path / "missing.jpg"),
         "-o", str(tmp_path / "out.gif")],
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
    assert run.returncode == 1
    assert "missing.jpg: no such file" in run.stderr
    assert "0 of 1 photo(s) animated; 1 failed" in run.stderr  # the summary, flushed
    assert not (tmp_path / "out.gif").exists()


def test_run_keeps_unused_modules_out_of_an_animate_process():
    """`cli.run` blocks `UNUSED_MODULES` (pandas) in the process of an animate command, so
    that importing Keras does not load them, and leaves other commands' processes alone."""
    code = (
        "import sys\n"
        "from spiritnet_tf import cli\n"
        "def main(argv):\n"
        "    blocked = [sys.modules.get(n, 'absent') is None for n in cli.UNUSED_MODULES]\n"
        "    if argv[0] == 'animate':\n"
        "        import keras\n"
        "        from keras.src.trainers.data_adapters import array_slicing\n"
        "        blocked.append(array_slicing.pandas is None)\n"
        "    print(blocked)\n"
        "    return 0\n"
        "cli.main = main\n"
        "sys.argv = ['spiritnet'] + sys.argv[1:]\n"
        "cli.run()\n")
    for command, want in (("animate", "[True, True]"), ("train", "[False]")):
        run = subprocess.run([sys.executable, "-c", code, command], capture_output=True, text=True,
                             cwd=REPO, env=_env(), timeout=300)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == want, (command, run.stdout)


def test_verbose_keeps_tensorflow_logs(tmp_path):
    """--verbose shows what the default hides (and proves that TF_LOG_LINE matches it: the
    quiet run of test_cli_stderr_holds_no_tensorflow_log_line would pass vacuously otherwise)."""
    argv = [sys.executable, "-m", "spiritnet_tf.cli", "data", "synthetic", "1", "--height", "32",
            "--width", "32"]
    verbose = subprocess.run(argv + ["--out", str(tmp_path / "a"), "--verbose"],
                             capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300)
    assert verbose.returncode == 0, verbose.stderr
    assert [line for line in verbose.stderr.splitlines() if cli.TF_LOG_LINE.match(line)]
