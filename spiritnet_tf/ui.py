"""``spiritnet ui``: a local web page to animate a photo (Gradio, on 127.0.0.1).

A person opens a photo in Gradio's image editor, paints what must stay still (any
painted pixel is static), sets the direction (a dial in degrees, or random from the
seed), magnitude, frames, loop and edges, previews the animation and downloads it as
GIF, MP4, WebP or an Android Motion Photo (``.MP.jpg``). The page calls the same
`spiritnet_tf.animate` as ``spiritnet animate``, with the command line's limits
(`spiritnet_tf.limits`) and its checks: a bad photo, or none, gives a message on the
page, never a crash.

Offline: the page is served on 127.0.0.1 only (no share link), Gradio's analytics are
off (``GRADIO_ANALYTICS_ENABLED=False`` and ``analytics_enabled=False``) and the theme
uses system fonts, so the page fetches nothing from outside the machine.

Gradio is an optional dependency (the ``ui`` extra: ``pip install 'spiritnet-tf[ui]'``);
this module imports it only when the page is built, so ``spiritnet --help`` and the
rest of the package never load it.
"""

import dataclasses
import os
import shutil
import tempfile
import time

from spiritnet_tf.cli import add_command, ranged

__all__ = ["add_parser", "build_app", "launch", "mask_from_layers", "OUTPUT_FORMATS",
           "DEFAULT_PORT", "HOST"]

HOST = "127.0.0.1"
DEFAULT_PORT = 7860
# Page choice -> extension of the file written (`spiritnet_tf.io.writers.output_format`).
OUTPUT_FORMATS = {"GIF": ".gif", "MP4": ".mp4", "WebP": ".webp",
                  "Motion Photo (.MP.jpg)": ".MP.jpg"}
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue",
                "Arial", "sans-serif")
SYSTEM_MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas",
                     "Liberation Mono", "monospace")
EXTRA_HINT = ("spiritnet ui needs the ui extra (Gradio): pip install 'spiritnet-tf[ui]', "
              "or pip install -e '.[ui]' in a clone")


def add_parser(subparsers):
    from spiritnet_tf.animation import DEFAULT_WORKING_SIDE
    from spiritnet_tf.limits import MAX_PIXELS, MIN_SIDE

    p = add_command(
        subparsers, "ui",
        description="Serve a web page on 127.0.0.1 (Gradio, offline: no analytics, no web "
                    "fonts): open a photo, paint what must stay still, set direction, "
                    "magnitude, frames, loop and edges, preview, and download GIF, MP4, WebP "
                    "or a Motion Photo. Needs the ui extra: pip install 'spiritnet-tf[ui]'. "
                    "Stop it with Ctrl-C.")
    p.add_argument("--port", type=ranged(int, 1, 65535), default=DEFAULT_PORT,
                   help=f"port on 127.0.0.1 (default {DEFAULT_PORT})")
    p.add_argument("--weights", metavar="W",
                   help=".keras model or .weights.h5 file (default: the bundled weights)")
    p.add_argument("--working-side", type=ranged(int, MIN_SIDE), default=DEFAULT_WORKING_SIDE,
                   help=f"long side the model runs at (default {DEFAULT_WORKING_SIDE})")
    p.add_argument("--max-pixels", type=ranged(int, 1), default=MAX_PIXELS,
                   help=f"refuse photos with more pixels (default {MAX_PIXELS:,})")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.set_defaults(func=_run)


def _import_gradio():
    """gradio, imported offline (analytics off); ImportError naming the extra if missing."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio
    except ImportError as e:
        raise ImportError(f"{EXTRA_HINT} ({e})") from None
    return gradio


def _run(args):
    try:
        _import_gradio()
    except ImportError as e:
        raise ValueError(str(e)) from None
    from spiritnet_tf.io.weights import weights_path

    if args.weights is not None:
        try:
            weights_path(args.weights)  # the loader's own rule, before the model loads
        except (ValueError, OSError) as e:
            raise ValueError(f"--weights {e}") from None
    try:
        launch(port=args.port, weights=args.weights, working_side=args.working_side,
               max_pixels=args.max_pixels, open_browser=args.open)
    except OSError as e:
        if "Cannot find empty port" in str(e):  # Gradio's words for a port in use
            raise OSError(f"--port {args.port}: {HOST}:{args.port} is in use; choose another "
                          "port") from None
        raise
    return 0


def mask_from_layers(layers, size):
    """The static mask of the editor's paint layers: float32 [H, W], 1 where any layer
    holds paint (alpha > 0), else 0; None when nothing is painted.

    ``layers``: RGBA arrays [h, w, 4] (Gradio's numpy layers); ``size``: (H, W) of the
    photo, which every layer must have (the editor makes them so).
    """
    import numpy as np

    mask = np.zeros(size, np.float32)
    for layer in layers or ():
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[2] != 4:
            raise ValueError(f"a paint layer must be RGBA [H, W, 4], got shape {layer.shape}")
        if layer.shape[:2] != tuple(size):
            raise ValueError(f"a paint layer of {layer.shape[1]}x{layer.shape[0]} does not "
                             f"match the {size[1]}x{size[0]} photo")
        mask[layer[..., 3] > 0] = 1.0
    return mask if mask.any() else None


def _number(label, value, kind=float):
    """A number field's value as ``kind``; ValueError naming the field when it is empty.
    Ranges are checked by `spiritnet_tf.animate` and the writers, as for the command line."""
    if value is None or value == "":
        raise ValueError(f"{label} is empty: enter a number")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{label} must be a number, got {value!r}") from None


@dataclasses.dataclass(eq=False)  # hashable by identity, as Gradio keeps its handlers
class _Animator:
    """The page's one action: the editor's photo and paint in, file paths out."""

    gr: object
    weights: object = dataclasses.field(kw_only=True)
    working_side: int = dataclasses.field(kw_only=True)
    max_pixels: int = dataclasses.field(kw_only=True)
    out_root: str = dataclasses.field(kw_only=True)
    _model: object = dataclasses.field(default=None, init=False)

    def model(self):
        from spiritnet_tf import animation

        if self._model is None:
            self._model = animation.load_model(self.weights)
        return self._model

    def __call__(self, editor, direction, random_direction, magnitude, frames, loop, edges,
                 output, fps, seed, progress=False):
        """One animation from the page's values; ``progress``: tqdm bars over the model's
        steps and the frames written (the page shows them: `build_app`)."""
        import numpy as np

        from spiritnet_tf import animation
        from spiritnet_tf.io.images import ImageInputError, load_image

        gr = self.gr
        photo = None if editor is None else editor.get("background")
        if photo is None:
            raise gr.Error("Open a photo first: drop it on the editor or click it to upload.")
        if output not in OUTPUT_FORMATS:
            raise gr.Error(f"Unknown output {output!r}; choose one of {', '.join(OUTPUT_FORMATS)}.")
        try:
            # The loader's checks (pixel limit, smallest side) before the model loads;
            # animate takes the loaded float image as it is.
            photo = load_image(np.asarray(photo), max_pixels=self.max_pixels, name="the photo")
            mask = mask_from_layers(editor.get("layers"), photo.shape[:2])
            frames, seed = _number("Frames", frames, int), _number("Seed", seed, int)
            fps, magnitude = _number("Frames per second", fps), _number("Magnitude", magnitude)
            direction = None if random_direction else _number("Direction", direction)
            anim = animation.animate(
                photo, frames, seed, weights=self.model(), direction=direction,
                magnitude=magnitude, mask=mask, working_side=self.working_side,
                loop=loop, max_pixels=self.max_pixels, edges=edges, progress=progress)
            folder = tempfile.mkdtemp(prefix="animation-", dir=self.out_root)
            preview = os.path.join(folder, "spiritnet.gif")
            anim.save(preview, fps=fps, progress=progress)
            download = preview
            if OUTPUT_FORMATS[output] != ".gif":
                download = os.path.join(folder, "spiritnet" + OUTPUT_FORMATS[output])
                anim.save(download, fps=fps, progress=progress)
        except (ImageInputError, ValueError, OSError) as e:
            raise gr.Error(str(e)) from None
        height, width = anim.size
        note = (f"{len(anim.frame_order())} frames at {width}x{height} (model at "
                f"{anim.working_size[1]}x{anim.working_size[0]}"
                + (f", zoom {anim.zoom:.3f}" if anim.zoom > 1 else "") + ")"
                + (", static region painted" if mask is not None else ""))
        if anim.motion_scale < 1:
            gr.Warning(f"The motion was scaled down to {anim.motion_scale:.0%} so that no "
                       "pixel shows content from outside the photo; lower the magnitude or "
                       "choose edges 'extend'.")
        return preview, download, note


def build_app(*, weights=None, working_side=None, max_pixels=None, out_root=None):
    """The page as a ``gradio.Blocks`` (not launched).

    Args:
      weights: see `spiritnet_tf.animation.load_model` (None: the bundled weights; loaded
        on the first animation, once).
      working_side: long side the model runs at (default: ``spiritnet animate``'s).
      max_pixels: photos with more pixels are refused (default `spiritnet_tf.limits.MAX_PIXELS`).
      out_root: folder that receives one subfolder per animation (default: a new
        temporary folder).
    """
    gr = _import_gradio()
    from spiritnet_tf.animation import DEFAULT_WORKING_SIDE
    from spiritnet_tf.config import DEFAULT_EDGES, EDGES
    from spiritnet_tf.io.writers import DEFAULT_FPS, LOOP_MODES, MAX_FPS
    from spiritnet_tf.limits import MAX_ANIMATION_FRAMES, MAX_PIXELS

    animator = _Animator(
        gr, weights=weights,
        working_side=DEFAULT_WORKING_SIDE if working_side is None else working_side,
        max_pixels=MAX_PIXELS if max_pixels is None else max_pixels,
        out_root=out_root or tempfile.mkdtemp(prefix="spiritnet-ui-"))
    with gr.Blocks(title="SpiritNet", analytics_enabled=False) as app:
        gr.Markdown("## SpiritNet\nOpen a photo, paint what must stay still with the brush, "
                    "choose the motion and press **Animate**.")
        with gr.Row():
            with gr.Column():
                editor = gr.ImageEditor(
                    label="Photo (paint = stays still)", type="numpy", image_mode="RGBA",
                    sources=["upload", "clipboard"], format="png", layers=False,
                    transforms=(), elem_id="photo",
                    brush=gr.Brush(colors=[("rgb(255, 64, 160)", 0.6)], color_mode="fixed"))
                direction = gr.Slider(0, 359, value=0, step=1, label="Direction (degrees: "
                                      "0 = right, 90 = down)", elem_id="direction")
                random_direction = gr.Checkbox(value=True, label="Random direction (from the "
                                               "seed; moving the dial clears it)",
                                               elem_id="random-direction")
                magnitude = gr.Slider(0, 4, value=1.0, step=0.05, label="Magnitude",
                                      elem_id="magnitude")
                frames = gr.Slider(1, MAX_ANIMATION_FRAMES, value=6, step=1,
                                   label="Generated frames", elem_id="frames")
                with gr.Row():
                    loop = gr.Radio(list(LOOP_MODES), value="none", label="Loop",
                                    elem_id="loop")
                    edges = gr.Radio(list(EDGES), value=DEFAULT_EDGES, label="Edges",
                                     elem_id="edges")
                with gr.Row():
                    output = gr.Dropdown(list(OUTPUT_FORMATS), value="GIF", label="Download as",
                                         elem_id="output")
                    fps = gr.Number(value=DEFAULT_FPS, minimum=0.1, maximum=MAX_FPS,
                                    label="Frames per second", elem_id="fps")
                    seed = gr.Number(value=0, precision=0, label="Seed", elem_id="seed")
                button = gr.Button("Animate", variant="primary", elem_id="animate")
            with gr.Column():
                preview = gr.Image(label="Preview", type="filepath", interactive=False,
                                   height=420, buttons=["download", "fullscreen"],
                                   elem_id="preview")
                download = gr.File(label="Download", interactive=False, elem_id="download")
                note = gr.Markdown(elem_id="note")

        def animate(editor, direction, random_direction, magnitude, frames, loop, edges,
                    output, fps, seed, progress=gr.Progress(track_tqdm=True)):
            # Gradio passes the tracker; animate's tqdm bars (the model's steps, the
            # frames written) then show on the page.
            return animator(editor, direction, random_direction, magnitude, frames, loop,
                            edges, output, fps, seed, progress=True)

        direction.release(lambda: False, None, random_direction)  # the dial was used
        button.click(animate, [editor, direction, random_direction, magnitude, frames, loop,
                               edges, output, fps, seed], [preview, download, note])
    app._spiritnet_out_root = animator.out_root
    return app


def launch(*, port=DEFAULT_PORT, weights=None, working_side=None, max_pixels=None,
           open_browser=False, block=True):
    """Builds the page and serves it on http://127.0.0.1:PORT (see `build_app`).

    ``block``: serve until Ctrl-C or SIGTERM, then stop the server and delete the
    temporary folder of the animations it made (the interrupt goes on to the caller); else
    return the running app at once (its ``close()`` stops it; the folder is
    ``app._spiritnet_out_root``).
    """
    gr = _import_gradio()
    app = build_app(weights=weights, working_side=working_side, max_pixels=max_pixels)
    # System fonts: the page loads no font file at all (no web fonts, even local ones).
    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(SYSTEM_MONO_FONTS))
    app.queue(default_concurrency_limit=1)  # one animation at a time: one model
    app.launch(server_name=HOST, server_port=port, share=False, inbrowser=open_browser,
               prevent_thread_lock=True, quiet=True, show_error=True,
               allowed_paths=[app._spiritnet_out_root], theme=theme, ssr_mode=False)
    print(f"spiritnet ui: serving http://{HOST}:{port}/ (Ctrl-C stops it)", flush=True)
    if block:
        try:
            while app.is_running:
                time.sleep(0.2)
        finally:
            app.close()
            shutil.rmtree(app._spiritnet_out_root, ignore_errors=True)
    return app
