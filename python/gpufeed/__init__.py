"""gpufeed for Python training loops: batches decoded by gpufeed (Node.js) into pinned shared
memory, mapped into this process with no copy, as torch tensors (numpy arrays without torch).

    import gpufeed
    loader = gpufeed.Loader("s3://bucket/dataset", batch_size=256, shuffle="window", seed=1)
    for epoch in range(3):
        for batch in loader:                      # one epoch
            x = batch["x"].cuda(non_blocking=True)
            ...
    state = loader.state_dict()                   # exact resume: loader.load_state_dict(state)

The server is the ``gpufeed`` command (npm package), found on PATH or given by the environment
variable GPUFEED_NODE_CMD (e.g. ``node /path/to/gpufeed/bin/gpufeed.js``).
"""
from .batch import Batch
from .errors import GpufeedError
from .loader import Loader
from .shm import PaddedColumn, VarColumn

__version__ = "0.1.0"
__all__ = ["Loader", "Batch", "GpufeedError", "VarColumn", "PaddedColumn", "__version__"]
