# miles train_async.py (scripts/run_*.py argument layout): 32 prompts × 8 samples in 2 optimizer steps per rollout;
# weights pushed every 2 rollouts while the next rollout generates → a rollout is at most 2 rollouts old →
# τ = (2+1)·2 = 6.
ROLLOUT_ARGS=(
   --rollout-batch-size 32
   --n-samples-per-prompt 8
   --num-steps-per-rollout 2
   --update-weights-interval 2
)
python3 train_async.py \
   --actor-num-nodes 1 \
   --actor-num-gpus-per-node 4 \
   ${ROLLOUT_ARGS[@]} \
   --rollout-batch-size 32 \
   --n-samples-per-prompt 8 \
   --num-steps-per-rollout 2 \
   --update-weights-interval 2 \
   --lr 1e-6
