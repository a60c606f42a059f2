"""Defaults of the style-decoder fit, by device (no heavy imports: the command line reads them for its help).

On the CPU a shallower AdaIN layer, fitted in minutes at 128x128; on an accelerator the paper's
relu4_1 at the configuration's patch size. The numbers behind the CPU choice are in docs/style-shift.md
("Why relu3_1 on the CPU"). The trainer's ``style_fit_kwargs`` are passed on top of these.
"""
from __future__ import annotations

STYLE_LAYERS: tuple[str, ...] = ("relu2_1", "relu3_1", "relu4_1")  # AdaIN layers a decoder can be fitted for
PAPER_LAYER = "relu4_1"

CPU_LAYER = "relu3_1"
# measured (README style-shift ablation): 800 steps keep more anatomy than 200 (edges 0.81 vs 0.71) and move
# the statistics further (relu3_1 std 0.499 vs 0.44), for ~4x the fit time (564 vs 140 s on one core)
CPU_STEPS = 800
CPU_BATCH_SIZE = 4
CPU_MAX_SIZE = 128

ACCELERATOR_LAYER = PAPER_LAYER
ACCELERATOR_STEPS = 1000
ACCELERATOR_BATCH_SIZE = 8

DEFAULT_STYLE_WEIGHT = 10.0  # as Huang & Belongie's lambda; measured: 10 moves the statistics further than 1 or 5
DEFAULT_IDENTITY_WEIGHT = 1.0
# measured: 0.5 keeps more anatomy than 0.25 (edge correlation 0.72 vs 0.66) at the same statistics, ~15 % slower
DEFAULT_DECODER_WIDTH = 0.5
# deepest layer of the style loss; None: the AdaIN layer itself
DEFAULT_STYLE_LOSS_LAYER: str | None = None
