"""`phyjoint benchmark` / `phyjoint bench-speed`: stock nnU-Net against PhyJoint variants on the same folds.

Modules: :mod:`.arms` (what is compared), :mod:`.runner` (stock commands, skipping what is done),
:mod:`.collect` (cross-validation predictions and their evaluation), :mod:`.table` (Table 1),
:mod:`.figures` (Fig. 3), :mod:`.speed` (latency, throughput, memory), :mod:`.loso`
(leave-one-scanner-out protocol), :mod:`.costs` (parameters, MACs, sizes, times).
"""
