# SkyRL fully async (examples/train/fully_async/fully_async_run_gsm8k.sh layout): one mini batch of 64 groups per
# trainer step, 1 update epoch; groups at most 4 trainer steps stale → τ = (4+1)·1 = 5.
set -x
MINI_BATCH_SIZE=64
MAX_STALENESS_STEPS=4
NUM_PARALLEL_GENERATION_WORKERS=$(( MINI_BATCH_SIZE * (MAX_STALENESS_STEPS + 1) ))
uv run --isolated --extra fsdp -m examples.train.fully_async.main_fully_async \
  trainer.fully_async.enabled=true \
  trainer.train_batch_size=${MINI_BATCH_SIZE} \
  trainer.policy_mini_batch_size=${MINI_BATCH_SIZE} \
  trainer.update_epochs_per_batch=1 \
  trainer.fully_async.max_staleness_steps=${MAX_STALENESS_STEPS} \
  trainer.fully_async.num_parallel_generation_workers=${NUM_PARALLEL_GENERATION_WORKERS} \
  trainer.policy.optimizer_config.lr=1.0e-6 \
  generator.n_samples_per_prompt=8 \
  $@
