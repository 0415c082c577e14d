"""fstmatch: explaining deepfake detection by analysing image matching (FST-Matching, ECCV 2022).

Stages, one subpackage each: ``synth`` (FST-Synth, a synthetic FF++), ``data`` (prepare, align,
dataset), ``models``, ``train``, ``explain`` (Shapley values of grid visual concepts),
``hypotheses`` (Q, stability, ground-truth scores), ``report``. The CLI (``fstmatch``) is a thin
layer over them.
"""

__version__ = "0.1.0"

from fstmatch.errors import UserError

__all__ = ["UserError", "__version__"]
