"""Self-supervised pre-training of the video models.

``VideoMAE`` (``vidlearn.ssl.videomae``): masked autoencoding of tube-masked clips; its encoder's
weights load into the ``vit_video`` classifier for fine-tuning.
"""

from vidlearn.ssl.videomae import VideoMAE

__all__ = ["VideoMAE"]
