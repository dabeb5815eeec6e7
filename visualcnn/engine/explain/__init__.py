"""See every number being computed (issue 13): trace one value of one layer back to the
numbers it is made of and to the input pixels it can see.

    from visualcnn.engine.explain import trace
    t = trace(model, image, "conv2d_1", (3, 4, 7))
    print(t.explain_text())

Pure numpy over the model's own weights and activations; never imports Qt.
"""

from .backward import BackwardTrace, trace_backward
from .trace import Term, Trace, receptive_field, trace
from .embedding import Embedding, embed  # the learned space (item 5)
from .maps import GradCam, Maximised, Occlusion, SanityCheck, SmoothGrad, gradcam, maximise, occlusion, \
    sanity_check, smoothgrad

__all__ = ["trace", "Trace", "Term", "receptive_field", "trace_backward", "BackwardTrace",
           "gradcam", "GradCam", "occlusion", "Occlusion", "smoothgrad", "SmoothGrad", "sanity_check", "SanityCheck",
           "maximise", "Maximised", "embed", "Embedding"]
