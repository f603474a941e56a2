package webhook

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClientNamespaces reads namespace labels through a controller-runtime
// client. It asks for metadata only, so the manager's cache keeps a
// metadata informer (labels, no specs) rather than full Namespace objects.
type ClientNamespaces struct {
	Reader client.Reader
}

func (c ClientNamespaces) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns := &metav1.PartialObjectMetadata{}
	ns.SetGroupVersionKind(schema.GroupVersionKind{Version: "v1", Kind: "Namespace"})
	if err := c.Reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil, fmt.Errorf("getting namespace %s: %w", name, err)
	}
	return ns.Labels, nil
}
