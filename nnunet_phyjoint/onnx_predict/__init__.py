"""Standalone predictor for ``phyjoint export --format onnx`` folders: onnxruntime, numpy and Pillow only.

Nothing imported from here pulls in torch, nnU-Net, timm, scipy or scikit-image (a test runs it with those
imports blocked), so an ultrasound cart needs only this package's wheel installed with ``--no-deps``
beside ``onnxruntime numpy pillow``::

    python -m nnunet_phyjoint.onnx_predict -i IMAGES -o OUT -m EXPORT_FOLDER

It writes what ``phyjoint predict`` writes (masks at the input size, ``classification.csv``, diagnosis
gating); ``phyjoint predict -m EXPORT_FOLDER`` runs the same code. This ``__init__`` imports nothing.
"""
