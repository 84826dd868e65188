#!/usr/bin/env bash
# A stand-in for the trainer CLI (`trainer train CONFIG`), used by the host tests to exercise the real
# host launcher, log forwarding, cancellation and resumption without TorchSharp. It reads output_dir,
# max_steps, seed and resume_from_checkpoint from the config the host wrote, and writes what the trainer
# writes: trainer_log.jsonl lines, checkpoint-<step>/ every 2 steps, model.safetensors at the end.
# The job's seed picks the behaviour: 13 fails, 99 hangs (with a child process), 77 is slow; 55 SIGKILLs
# itself once after step 3 (a fresh start only; a resumed run goes on); 56 writes an error line and
# SIGKILLs itself after step 3 every time; else fast. It writes its environment to ../env.txt and, like
# the real trainer, a progress line per step to stderr.
set -euo pipefail
[ "${1:-}" = train ] && [ -f "${2:-}" ] || { echo "usage: fake-trainer.sh train CONFIG" >&2; exit 2; }
config=$2
# The host writes the spec as indented JSON, one key per line ("key": value,).
get() { sed -n "s/^ *\"$1\": //p" "$config" | sed 's/,$//; s/^null$//' | tr -d '"'; }
out=$(get output_dir); steps=$(get max_steps); seed=$(get seed); resume=$(get resume_from_checkpoint)
mkdir -p "$out"
echo $$ > "$out/../trainer.pid"
env > "$out/../env.txt"
case $seed in
  13) echo "loading dataset" ; echo "error: the fake trainer failed on purpose" >&2; exit 3 ;;
  99) sleep 300 & echo $! > "$out/../grandchild.pid"; wait ;;
esac
delay=0.05; [ "$seed" = 77 ] && delay=0.6
start=1; [ -n "$resume" ] && start=$(( ${resume##*checkpoint-} + 1 ))
# Like the real trainer, a resumed run drops the log lines after its checkpoint (they are redone).
if [ -f "$out/trainer_log.jsonl" ]; then
  awk -v keep=$(( start - 1 )) '{ match($0, /"current_steps": [0-9]+/); if (substr($0, RSTART + 17, RLENGTH - 17) + 0 <= keep) print }' "$out/trainer_log.jsonl" > "$out/trainer_log.tmp"
  mv "$out/trainer_log.tmp" "$out/trainer_log.jsonl"
fi
# Who held the run, and when (the split-brain tests check no two trainers overlapped).
echo "start $$ $(date +%s.%N)" >> "$out/../holders.log"
trap 'echo "end $$ $(date +%s.%N)" >> "$out/../holders.log"' EXIT
for ((s = start; s <= steps; s++)); do
  sleep $delay
  printf '{"current_steps": %d, "total_steps": %d, "loss": %s, "lr": 0.0001, "epoch": %s, "percentage": %s, "elapsed_time": %s, "remaining_time": "0:00:0%d", "tokens_per_sec": 1234.5, "trained_tokens": %d, "rank_peak_bytes": [1000, 2000]}\n' \
    "$s" "$steps" "$(awk "BEGIN { printf \"%.4f\", 2 / $s }")" "$(awk "BEGIN { printf \"%.2f\", $s / $steps }")" "$(( 100 * s / steps ))" "$s" "$(( steps - s ))" "$(( 64 * s ))" >> "$out/trainer_log.jsonl"
  echo "tick $$ $(date +%s.%N)" >> "$out/../holders.log"
  echo "step $s/$steps  loss $(awk "BEGIN { printf \"%.4f\", 2 / $s }")" >&2
  if (( s % 2 == 0 )); then mkdir -p "$out/checkpoint-$s"; echo "$s" > "$out/checkpoint-$s/step.txt"; echo "{\"global_step\": $s}" > "$out/checkpoint-$s/trainer_state.json"; fi
  if (( s == 3 )) && { [ "$seed" = 56 ] || { [ "$seed" = 55 ] && [ -z "$resume" ]; }; }; then
    [ "$seed" = 56 ] && echo "error: rank 1 ran out of memory" >&2
    echo "step $s/$steps  loss 0.6667" >&2
    kill -KILL $$
  fi
done
printf 'weights of %s' "$(basename "$(dirname "$out")")" > "$out/model.safetensors"
echo '{"model_type": "llama"}' > "$out/config.json"
