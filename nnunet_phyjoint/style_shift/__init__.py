"""Physics style shift (paper Sec. 3.1): frozen VGG-19 descriptor, AdaIN to another scanner's
feature statistics, a decoder back to image space, and the training-time augmenter.

Modules: defaults (the fit's defaults by device, including the AdaIN layer), vgg_descriptor, adain,
style_decoder, fit, reference_bank, augmenter, quality (the held-out measurement), show.
Import from the modules themselves; this package keeps ``import`` light.
"""
