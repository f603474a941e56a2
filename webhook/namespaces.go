package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClientNamespaces reads namespace labels through a controller-runtime
// client; with the manager's cached client this is an informer lookup.
type ClientNamespaces struct {
	Reader client.Reader
}

func (c ClientNamespaces) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	var ns corev1.Namespace
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		return nil, fmt.Errorf("getting namespace %s: %w", name, err)
	}
	return ns.Labels, nil
}
