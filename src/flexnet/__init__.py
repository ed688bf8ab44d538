"""flexnet: measure Effective Model Complexity (EMC) of neural networks.

EMC is the largest training-set size that a network, trained by a given
procedure, fits to 100% training accuracy at a verified minimum of the loss
(Shwartz-Ziv, Goldblum et al. 2024; Zhang et al. 2017).
"""

__version__ = "0.1.0"
