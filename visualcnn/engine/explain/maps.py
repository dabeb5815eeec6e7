"""Why did it answer that, and what does a filter want to see (issue 13 items 3 and 4):
the heat maps and the maximising pictures, gathered for one import line.

    from visualcnn.engine.explain import gradcam, occlusion, smoothgrad, sanity_check, maximise
"""

from .filter_vis import Maximised, maximise
from .gradcam import GradCam, conv_layers, gradcam
from .occlusion import Occlusion, occlusion
from .sanity import SanityCheck, sanity_check
from .smoothgrad import SmoothGrad, smoothgrad

__all__ = ["GradCam", "gradcam", "conv_layers", "Occlusion", "occlusion", "SmoothGrad", "smoothgrad",
           "SanityCheck", "sanity_check", "Maximised", "maximise"]
