// Package workload owns reading Kubernetes manifests as faultline sees
// them: Pods and the workloads that carry a pod template (Deployment,
// StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), where each template
// sits, and the validation of faultline's labels and annotations on it. The
// offline CLI and the validating webhook share it.
package workload
