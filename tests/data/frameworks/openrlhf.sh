# OpenRLHF launch command: 128 prompts × 8 samples = 1024 per rollout batch, 512 per optimizer step, 1 epoch → 2
# steps per version; async with a queue of 2 batches → τ = (2+1)·2 = 6.
python3 -m openrlhf.cli.train_ppo_ray \
   --rollout.batch_size 128 \
   --rollout.n_samples_per_prompt 8 \
   --train.batch_size 512 \
   --train.max_epochs 1 \
   --train.async_enable \
   --train.async_queue_size 2 \
   --actor.learning_rate 5e-7
