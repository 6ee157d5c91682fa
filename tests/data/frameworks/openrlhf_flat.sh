# OpenRLHF launch command with the flat flags of versions before OpenRLHF@ed62d0e (2026-04): 128 prompts × 8
# samples = 1024 per rollout batch, 256 per optimizer step → 4 steps per batch; async queue of 2 → τ = (2+1)·4 = 12.
ray job submit --address="http://127.0.0.1:8265" -- python3 -m openrlhf.cli.train_ppo_ray \
   --pretrain Qwen/Qwen2.5-7B-Instruct \
   --rollout_batch_size 128 \
   --n_samples_per_prompt 8 \
   --train_batch_size 256 \
   --micro_train_batch_size 4 \
   --max_epochs 1 \
   --async_train \
   --async_queue_size 2 \
   --actor_learning_rate 5e-7
