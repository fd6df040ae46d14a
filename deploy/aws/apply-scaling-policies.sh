#!/usr/bin/env bash
# ragd on EC2 without Kubernetes: an Auto Scaling group of instances, each
# running the container image (or `make run`) behind an Application Load
# Balancer whose target group health-checks /ready. Two target-tracking
# policies, the AWS counterparts of the chart's HPA: average CPU at 70 %
# (target-tracking-cpu.json), and requests per instance at 6,000 a minute,
# i.e. the HPA's 100 per second per pod (target-tracking-requests.json: put
# your ALB and target group in ResourceLabel). The group scales on whichever
# asks for more instances, and scales in only when both allow it.
#
#   ASG=ragd ./deploy/aws/apply-scaling-policies.sh
#
# Needs the AWS CLI and credentials; nothing in this repository runs it.
set -euo pipefail
ASG=${ASG:-ragd}
HERE=$(cd "$(dirname "$0")" && pwd)

# Instances take about two minutes from boot to /ready (image pull, model
# load, index rebuild from the store): don't count them before that.
aws autoscaling update-auto-scaling-group --auto-scaling-group-name "$ASG" \
  --min-size 3 --max-size 20 --default-instance-warmup 120 \
  --health-check-type ELB --health-check-grace-period 120

aws autoscaling put-scaling-policy --auto-scaling-group-name "$ASG" \
  --policy-name ragd-cpu-70 --policy-type TargetTrackingScaling \
  --target-tracking-configuration "file://$HERE/target-tracking-cpu.json"

aws autoscaling put-scaling-policy --auto-scaling-group-name "$ASG" \
  --policy-name ragd-requests-per-target --policy-type TargetTrackingScaling \
  --target-tracking-configuration "file://$HERE/target-tracking-requests.json"
