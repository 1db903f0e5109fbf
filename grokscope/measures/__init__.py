"""Measures: pure functions over tensors and metric columns, the math every probe, report and
experiment calls. Nothing here imports the rest of grokscope (an import contract holds that), so
these work in a notebook on any model's weights.

- `fourier`: the Fourier basis over Z_p, frequency norms, Gini sparsity, key frequencies
- `restricted`: Nanda et al.'s restricted and excluded losses
- `similarity`: kernel alignment, linear / RBF / debiased / minibatch CKA
- `ntk`: the empirical NTK (any model, layer-wise MLP form, committee closed form), Lanczos,
  effective rank, alignment statistics and the lazy kernel-regression baseline
- `parallelogram`: Liu et al.'s parallelograms, RQI, effective loss, critical training fraction
- `kumar`: the committee machine's error decomposition (Kumar et al. 2024)
- `landscape`: Omnigrok's L/U summary and log-log interpolation
- `losses`: losses and accuracy shared by the trainers and the probes
- `transitions`: when a run memorized and generalized, its phases (Nanda; Liu), half-change steps
"""
