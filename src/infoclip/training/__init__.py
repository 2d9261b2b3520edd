"""Training: the CAT-Seg recipe with the InfoCLIP objective, resumable, multi-GPU through torchrun; export.

Parts: ``run_config`` (defaults <- preset/YAML <- ``--set``), ``optim`` (param groups, cosine schedule,
full-model clipping), ``augment`` (CAT-Seg's training mapper), ``data_stream`` (seeded, position-addressed data
order), ``checkpoint`` (atomic files + ``last_checkpoint``), ``run_log`` (CSV, TensorBoard, plot),
``distributed`` (torchrun environment).
"""
