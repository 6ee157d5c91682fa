# verl one-step-off recipe (verl/experimental/one_step_off_policy/shell/grpo_0.6b_gsm8k_fsdp2_2_6.sh layout):
# 1152 prompts per step in mini-batches of 192, 1 epoch → 6 optimizer steps per global step; every batch is one
# global step old → τ = (1+1)·6 = 12. The script's ${var} and $((…)) are expanded as bash would.
set -x
project_name='GRPO'
RAY_DATA_HOME=${RAY_DATA_HOME:-"${HOME}/verl"}
MODEL_PATH=${MODEL_PATH:-"${RAY_DATA_HOME}/models/Qwen3-0.6B"}
NGPUS_PER_NODE=${NGPUS_PER_NODE:-8}
n_gpus_rollout=2
n_gpus_training=$((NGPUS_PER_NODE - n_gpus_rollout))
train_prompt_bsz=1152
train_prompt_mini_bsz=$((train_prompt_bsz / 6))

python3 -m verl.experimental.one_step_off_policy.main_ppo \
    algorithm.adv_estimator=grpo \
    data.train_batch_size=${train_prompt_bsz} \
    actor_rollout_ref.model.path="${MODEL_PATH}" \
    actor_rollout_ref.actor.optim.lr=1e-6 \
    actor_rollout_ref.actor.ppo_mini_batch_size=${train_prompt_mini_bsz} \
    actor_rollout_ref.rollout.n=5 \
    trainer.logger=['console','tensorboard'] \
    trainer.n_gpus_per_node="${n_gpus_training}" \
    rollout.n_gpus_per_node="${n_gpus_rollout}" $@
