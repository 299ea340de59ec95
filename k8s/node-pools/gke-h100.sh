#!/usr/bin/env bash
# GKE: an autoscaling pool of a3-highgpu-8g (8 x H100 80GB) nodes for the training Jobs. The nodes carry the label
# cloud.google.com/gke-accelerator=nvidia-h100-80gb (KubernetesJobLauncher's default nodeSelector) and the
# nvidia.com/gpu=present:NoSchedule taint (tolerated by the Jobs). Spot nodes are fine: preemption is retried.
set -euo pipefail
CLUSTER=${CLUSTER:-valley}
REGION=${REGION:-us-central1}
gcloud container node-pools create h100 \
  --cluster "$CLUSTER" --region "$REGION" \
  --machine-type a3-highgpu-8g \
  --accelerator type=nvidia-h100-80gb,count=8,gpu-driver-version=latest \
  --enable-autoscaling --min-nodes 0 --max-nodes 4 \
  --spot \
  --node-taints nvidia.com/gpu=present:NoSchedule \
  --ephemeral-storage-local-ssd count=16
