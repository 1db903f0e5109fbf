"""Experiments: many runs and what is made of them together. `sweep` (grids, seeds, presets;
local and Ray executors), `phase_table` (Liu et al.'s phase of every run of a sweep), `landscape`
(Omnigrok's loss against weight norm)."""
