"""Export SpiritNet as a TFLite flatbuffer of fixed size, builtin ops only (docs/design.md §6).

    python export/to_tflite.py --out spiritnet.tflite [--weights W | --weights none] \
        [--height 256 --width 256 --frames 6] [--float16] [--overwrite]

Inputs ``image`` float32 [1,H,W,3] and ``flow0`` float32 [1,H,W,2]; outputs ``frames``
[1,T,H,W,3] and ``flows`` [1,T,H,W,2]. The logic lives in `spiritnet_tf.export.mobile`
(see its docstring, also for drawing flow0 on the host).
"""

import sys

from spiritnet_tf.export.mobile import main_tflite

if __name__ == "__main__":
    sys.exit(main_tflite())
