package testenv

import (
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// APIServer starts the locally built kube-apiserver and etcd with
// faultline's CRDs installed (env may add webhooks), for the life of the
// test, and returns a client that knows faultline's types.
func APIServer(t *testing.T, env *envtest.Environment) (*rest.Config, *runtime.Scheme, client.Client) {
	t.Helper()
	Assets(t)
	if env == nil {
		env = &envtest.Environment{}
	}
	env.CRDDirectoryPaths = append(env.CRDDirectoryPaths, filepath.Join(RepoRoot(t), "charts", "faultline", "crds"))
	env.ErrorIfCRDPathMissing = true
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting kube-apiserver and etcd: %v", err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, scheme, c
}
