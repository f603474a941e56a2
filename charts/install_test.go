package charts

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/faultline-dev/faultline/hack/testenv"
	"github.com/faultline-dev/faultline/policy/api/v1alpha1"
)

// A helm install into the local control plane, then the webhook serving an
// admission with the certificates the chart's self-signed path produced.
//
// There is no kubelet here, so the test plays its part for the one pod:
// it runs faultline-webhook as a process with the container args of the
// installed Deployment, as the chart's ServiceAccount (a token from the
// TokenRequest API, so the chart's RBAC is what is exercised), copies the
// Secret the webhook fills into its cert dir as a Secret volume would, and
// points the chart's Service at the process with an EndpointSlice. The API
// server then calls the webhook through the Service name, verifying the
// serving certificate against the caBundle the webhook injected.
func TestHelmInstallServesAdmissionsWithItsOwnCertificates(t *testing.T) {
	hostIP := nonLoopbackIPv4(t)
	env := &envtest.Environment{}
	// Route webhook calls to the Service's endpoints (no kube-proxy here).
	env.ControlPlane.GetAPIServer().Configure().Set("enable-aggregator-routing", "true")
	cfg, _, c := testenv.APIServer(t, env)
	kubeconfig := adminKubeconfig(t, env)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const ns = "faultline-system"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}

	if out, err := helm(t, "install", "faultline", chartDir(t), "--namespace", ns, "--kubeconfig", kubeconfig); err != nil {
		t.Fatalf("helm install: %v\n%s", err, out)
	} else if !strings.Contains(string(out), "faultline.dev/injection=enabled") {
		t.Errorf("NOTES do not say how to opt a namespace in:\n%s", out)
	}

	// The webhook process, with the installed Deployment's arguments.
	var dep appsv1.Deployment
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "faultline"}, &dep); err != nil {
		t.Fatal(err)
	}
	webhookPort, probePort := freePort(t), freePort(t)
	certDir := t.TempDir()
	var args []string
	for _, a := range dep.Spec.Template.Spec.Containers[0].Args {
		switch name, _, _ := strings.Cut(a, "="); name {
		case "--cert-dir":
			a = "--cert-dir=" + certDir
		case "--webhook-port":
			a = fmt.Sprintf("--webhook-port=%d", webhookPort)
		case "--health-probe-bind-address":
			a = fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probePort)
		case "--metrics-bind-address":
			a = "--metrics-bind-address=0"
		}
		args = append(args, strings.ReplaceAll(a, "$(POD_NAMESPACE)", ns))
	}
	sa := serviceAccountKubeconfig(t, ctx, cfg, dep.Spec.Template.Spec.ServiceAccountName, ns)
	var logs syncBuffer
	proc := exec.Command(testenv.GoBinary(t, "./cmd/faultline-webhook"), args...)
	proc.Env = append(os.Environ(), "KUBECONFIG="+sa, "POD_NAMESPACE="+ns)
	proc.Stdout, proc.Stderr = &logs, &logs
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = proc.Wait()
		close(exited)
		cancel() // every wait below ends at once
	}()
	t.Cleanup(func() {
		_ = proc.Process.Signal(syscall.SIGTERM)
		<-exited
		if t.Failed() {
			t.Logf("faultline-webhook logs:\n%s", logs.String())
		}
	})

	// The Service's endpoint is the process.
	var svc corev1.Service
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "faultline-webhook"}, &svc); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "faultline-webhook-test",
			Labels: map[string]string{discoveryv1.LabelServiceName: svc.Name, discoveryv1.LabelManagedBy: "faultline-chart-test"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{hostIP}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)}}},
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("https"), Port: ptr.To(int32(webhookPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Endpoints{ //nolint:staticcheck // older resolvers read Endpoints
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: svc.Name},
		Subsets: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: hostIP}},
			Ports: []corev1.EndpointPort{{Name: "https", Port: int32(webhookPort), Protocol: corev1.ProtocolTCP}}}},
	}); err != nil {
		t.Fatal(err)
	}

	// The kubelet's part: the Secret volume, kept current.
	start := time.Now()
	go func() {
		seen := map[string]string{}
		for ctx.Err() == nil {
			var s corev1.Secret
			if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "faultline-webhook-tls"}, &s); err == nil && len(s.Data["tls.crt"]) > 0 {
				for k, v := range s.Data {
					if seen[k] == string(v) {
						continue
					}
					tmp := filepath.Join(certDir, "."+k)
					if os.WriteFile(tmp, v, 0o600) == nil && os.Rename(tmp, filepath.Join(certDir, k)) == nil {
						seen[k] = string(v)
					}
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	poll(t, ctx, 60*time.Second, "the webhook to fill its certificate Secret", func() bool {
		_, err := os.Stat(filepath.Join(certDir, "tls.crt"))
		return err == nil
	})
	t.Logf("certificate Secret filled %s after start", time.Since(start).Round(time.Millisecond))
	poll(t, ctx, 60*time.Second, "both webhook configurations to carry the CA", func() bool {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if c.Get(ctx, client.ObjectKey{Name: "faultline-injector"}, &m) != nil || c.Get(ctx, client.ObjectKey{Name: "faultline-validator"}, &v) != nil {
			return false
		}
		for _, w := range m.Webhooks {
			if len(w.ClientConfig.CABundle) == 0 {
				return false
			}
		}
		return len(v.Webhooks[0].ClientConfig.CABundle) > 0
	})

	// An admission through the Service, with those certificates.
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop",
		Labels: map[string]string{v1alpha1.LabelNamespaceInjection: v1alpha1.NamespaceInjectionOn}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &v1alpha1.ChaosPolicy{ObjectMeta: metav1.ObjectMeta{Name: "shop"}, Spec: v1alpha1.ChaosPolicySpec{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "shop"}},
		Limits:            v1alpha1.Limits{MaxDelay: "1s"},
	}}); err != nil {
		t.Fatal(err)
	}
	attempt := 0
	admitted := func(what string) {
		t.Helper()
		poll(t, ctx, 60*time.Second, what, func() bool {
			attempt++
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: fmt.Sprintf("web-%d", attempt),
				Labels:      map[string]string{v1alpha1.LabelPodInject: "true"},
				Annotations: map[string]string{v1alpha1.AnnotationFaults: "network: [{delay: 100ms}]"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
			if err := c.Create(ctx, p); err != nil {
				t.Fatalf("creating a pod: %v", err)
			}
			_, injected := p.Annotations[v1alpha1.AnnotationStatus]
			return injected
		})
	}
	admitted("a pod to be injected through the installed webhook")
	t.Logf("first injected admission %s after the webhook started (%d pod(s) created)", time.Since(start).Round(time.Millisecond), attempt)

	// Rotation without a restart: with the Secret emptied (as if the CA
	// were lost), the webhook makes a new CA and certificate, puts the new
	// caBundle in place, and serves the new certificate once the volume
	// catches up, through controller-runtime's certwatcher.
	caBundle := func() string {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		_ = c.Get(ctx, client.ObjectKey{Name: "faultline-injector"}, &m)
		return string(m.Webhooks[0].ClientConfig.CABundle)
	}
	oldCA := caBundle()
	var secret corev1.Secret
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "faultline-webhook-tls"}, &secret); err != nil {
		t.Fatal(err)
	}
	secret.Data = nil
	rotated := time.Now()
	if err := c.Update(ctx, &secret); err != nil {
		t.Fatal(err)
	}
	poll(t, ctx, 60*time.Second, "a new caBundle", func() bool { ca := caBundle(); return ca != "" && ca != oldCA })
	admitted("a pod to be injected with the rotated certificate")
	select {
	case <-exited:
		t.Fatal("the webhook restarted to rotate its certificate")
	default:
	}
	t.Logf("certificates rotated: new caBundle and an injected admission %s after the Secret was emptied, same process", time.Since(rotated).Round(time.Millisecond))
	if strings.Contains(strings.ToLower(logs.String()), "forbidden") {
		t.Errorf("the chart's RBAC refused something the webhook does:\n%s", grepLines(logs.String(), "forbidden"))
	}
}

// serviceAccountKubeconfig signs in as a ServiceAccount, as a pod would.
func serviceAccountKubeconfig(t *testing.T, ctx context.Context, admin *rest.Config, name, ns string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(admin)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for service account %s: %v", name, err)
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["local"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name, Namespace: ns}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "sa-kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Fatal("no non-loopback IPv4 address: the API server refuses loopback endpoints, so the installed Service cannot reach the webhook")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func poll(t *testing.T, ctx context.Context, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, limit, true, func(context.Context) (bool, error) {
		return cond(), nil
	}); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(strings.ToLower(l), sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
