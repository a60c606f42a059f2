"""`phyjoint benchmark` / `phyjoint bench-speed`: stock nnU-Net against PhyJoint variants on the same folds.

Modules: :mod:`.arms` (what is compared), :mod:`.runner` (stock commands, skipping what is done),
:mod:`.collect` (cross-validation predictions and their evaluation), :mod:`.table` (Table 1),
:mod:`.budget` (equal epochs or equal minutes per fold), :mod:`.curves` (learning curves from the
training logs), :mod:`.figures` (Fig. 3, learning curves), :mod:`.speed` (latency, throughput, memory), :mod:`.stages` (config,
preparation and training shared by both protocols), :mod:`.pipeline` (cross-validation, calls :mod:`.loso`
for the leave-one-scanner-out protocol), :mod:`.costs` (parameters, MACs, sizes, times).
"""
