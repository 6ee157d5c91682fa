# Tinker cookbook math_rl recipe (chz key=value CLI): samples may be 2 training steps behind, 2 optimizer substeps per
# step → τ = (2+1)·2 = 6.
python -m tinker_cookbook.recipes.math_rl.train \
    model_name=Qwen/Qwen3-8B \
    groups_per_batch=64 \
    learning_rate=4e-5 \
    num_substeps=2 \
    max_steps_off_policy=2
