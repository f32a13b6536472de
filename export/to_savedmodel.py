"""Export SpiritNet as a versioned SavedModel for TF Serving (docs/design.md §6).

    python export/to_savedmodel.py --weights model.keras --out models/spiritnet/1 \
        [--working-side 448] [--max-output-side 1024] [--custom-ops] [--overwrite]

The logic lives in `spiritnet_tf.export.savedmodel` (see its docstring for the signatures).
"""

import sys

from spiritnet_tf.export.savedmodel import main

if __name__ == "__main__":
    sys.exit(main())
