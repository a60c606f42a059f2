"""Physics style shift (paper Sec. 3.1): frozen VGG-19 descriptor, AdaIN to another scanner's
feature statistics, a decoder back to image space, and the training-time augmenter.

Modules: vgg_descriptor, adain, style_decoder, fit, reference_bank, augmenter, show.
Import from the modules themselves; this package keeps ``import`` light.
"""
