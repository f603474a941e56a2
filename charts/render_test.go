package charts

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/faultline-dev/faultline/hack/golden"
	"github.com/faultline-dev/faultline/hack/testenv"
)

// kubeVersion is the local control plane's: helm built from source has no
// default Kubernetes version of its own.
const kubeVersion = "1.37.2"

// combination is a meaningful set of values a platform team would pick.
type combination struct {
	name string
	set  []string
}

var combinations = []combination{
	{name: "defaults"},
	{name: "cert-manager", set: []string{"certificates.mode=cert-manager"}},
	{name: "cert-manager-cluster-issuer", set: []string{"certificates.mode=cert-manager",
		"certificates.certManager.issuerRef.kind=ClusterIssuer", "certificates.certManager.issuerRef.name=corp-ca"}},
	{name: "classic-sidecar-no-metrics", set: []string{"sidecarMode=classic", "metrics.enabled=false", "podDisruptionBudget.enabled=false"}},
	{name: "monitoring", set: []string{"metrics.serviceMonitor.enabled=true", "dashboard.enabled=true", "replicaCount=3"}},
	{name: "locked-down", set: []string{"webhook.clientCA.configMap=apiserver-client-ca", "networkPolicy.webhookFrom[0].ipBlock.cidr=10.0.0.0/24",
		"networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=observability"}},
}

func helm(t *testing.T, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(testenv.Assets(t), "helm"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, &helmError{err: err, stderr: stderr.String()}
	}
	return out, nil
}

type helmError struct {
	err    error
	stderr string
}

func (e *helmError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.stderr) }

func chartDir(t *testing.T) string { return filepath.Join(testenv.RepoRoot(t), "charts", "faultline") }

// render is `helm template` of the chart as release "faultline" in
// faultline-system with the given --set values.
func render(t *testing.T, set ...string) []byte {
	t.Helper()
	args := []string{"template", "faultline", chartDir(t), "--namespace", "faultline-system", "--kube-version", kubeVersion}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("helm template %v: %v", set, err)
	}
	return out
}

func TestChartLintsCleanInEveryCombination(t *testing.T) {
	for _, c := range combinations {
		t.Run(c.name+" passes helm lint --strict", func(t *testing.T) {
			args := []string{"lint", "--strict", chartDir(t), "--kube-version", kubeVersion}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			if out, err := helm(t, args...); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
		})
	}
}

func TestChartRendersTheGoldenManifests(t *testing.T) {
	for _, c := range combinations {
		t.Run(c.name+" renders as its golden file", func(t *testing.T) {
			golden.Assert(t, filepath.Join("testdata", c.name+".yaml"), render(t, c.set...))
		})
	}
	golden.CheckStale(t, filepath.Join("testdata", "*.yaml"))
}

// Bad values fail at helm install/template with the path and the rule.
func TestBadValuesAreRefusedNamingTheField(t *testing.T) {
	cases := []struct {
		name, set, want string
	}{
		{"an unknown sidecar mode", "sidecarMode=sidecar", "at '/sidecarMode': value must be one of 'native', 'classic'"},
		{"a webhook timeout over 5 s", "webhook.timeoutSeconds=10", "at '/webhook/timeoutSeconds': maximum: got 10, want 5"},
		{"zero replicas", "replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"},
		{"a misspelt top-level key", "replicas=3", "additional properties 'replicas' not allowed"},
		{"an unknown certificate mode", "certificates.mode=vault", "at '/certificates/mode': value must be one of 'self-signed', 'cert-manager'"},
		{"a duration without a unit", "certificates.certManager.duration=90", "/certificates/certManager/duration"},
		{"an issuer of an unknown kind", "certificates.certManager.issuerRef.kind=Vault", "at '/certificates/certManager/issuerRef/kind'"},
		{"a log level zap does not know", "logLevel=verbose", "at '/logLevel'"},
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			_, err := helm(t, "template", "faultline", chartDir(t), "--kube-version", kubeVersion, "--set", c.set)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
