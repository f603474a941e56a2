package webhook

import (
	"context"
	"fmt"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// ClientPolicies lists ChaosPolicies through a controller-runtime client
// (the manager's informer cache in the binary).
type ClientPolicies struct {
	Reader client.Reader
}

func (c ClientPolicies) ChaosPolicies(ctx context.Context) ([]v1alpha1.ChaosPolicy, error) {
	var l v1alpha1.ChaosPolicyList
	if err := c.Reader.List(ctx, &l); err != nil {
		return nil, fmt.Errorf("listing ChaosPolicies: %w", err)
	}
	return l.Items, nil
}
