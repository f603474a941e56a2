package webhook

import (
	"context"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClientOwners reads a pod's controlling ReplicaSet or StatefulSet (from
// the informer cache in the binary) for its desired replicas.
type ClientOwners struct {
	Reader client.Reader
}

func (o ClientOwners) DesiredReplicas(ctx context.Context, pod *corev1.Pod) (int, bool) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return 0, false
	}
	key := client.ObjectKey{Namespace: pod.Namespace, Name: ref.Name}
	var replicas *int32
	switch ref.APIVersion + "/" + ref.Kind {
	case "apps/v1/ReplicaSet":
		var rs appsv1.ReplicaSet
		if o.Reader.Get(ctx, key, &rs) != nil || rs.UID != ref.UID {
			return 0, false
		}
		replicas = rs.Spec.Replicas
	case "apps/v1/StatefulSet":
		var ss appsv1.StatefulSet
		if o.Reader.Get(ctx, key, &ss) != nil || ss.UID != ref.UID {
			return 0, false
		}
		replicas = ss.Spec.Replicas
	default:
		return 0, false
	}
	if replicas == nil {
		return 1, true // the API default
	}
	return int(*replicas), true
}
