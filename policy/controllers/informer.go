package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"

	"github.com/faultline-dev/faultline/policy"
)

// WatchGroups feeds g from the pod metadata informer of informers.
func WatchGroups(ctx context.Context, informers ctrlcache.Informers, g *policy.GroupCounter) error {
	synced, err := WatchPodMetadata(ctx, informers, g)
	if err != nil {
		return err
	}
	g.Synced = synced
	return nil
}

// WatchPodMetadata adds h to the metadata-only pod informer of informers
// (the manager's cache): only names, labels and annotations are held, never
// pod specs. It returns whether h has seen the initial list.
func WatchPodMetadata(ctx context.Context, informers ctrlcache.Informers, h toolscache.ResourceEventHandler) (func() bool, error) {
	podMeta := &metav1.PartialObjectMetadata{}
	podMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Pod"))
	inf, err := informers.GetInformer(ctx, podMeta, ctrlcache.BlockUntilSynced(false))
	if err != nil {
		return nil, fmt.Errorf("pod metadata informer: %w", err)
	}
	reg, err := inf.AddEventHandler(h)
	if err != nil {
		return nil, fmt.Errorf("pod metadata informer: %w", err)
	}
	return reg.HasSynced, nil
}
