package webhook

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
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

// ClientProfiles finds FaultProfiles through a controller-runtime client.
type ClientProfiles struct {
	Reader client.Reader
}

func (c ClientProfiles) FaultProfile(ctx context.Context, namespace, name string) (*v1alpha1.FaultProfile, error) {
	var p v1alpha1.FaultProfile
	if err := c.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("getting FaultProfile %s/%s: %w", namespace, name, err)
	}
	return &p, nil
}
