"""Video and query features: CLIP towers (``clip``), the tokenizer (``tokenizer``), the feature store and extraction.

Import-light on purpose: the submodules import torch and open_clip inside their functions.
"""
