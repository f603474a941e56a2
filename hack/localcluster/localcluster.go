// Package localcluster starts a real control plane on this machine for
// `make run` and the e2e tests: etcd and kube-apiserver (through envtest),
// kube-controller-manager so that Deployments become ReplicaSets and Pods,
// optionally kube-scheduler, and faultline-webhook registered with its
// MutatingWebhookConfiguration. Stop ends every process it started.
package localcluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/faultline-dev/faultline/webhook"
)

// Options say what to start and where things are.
type Options struct {
	// Assets holds etcd, kube-apiserver, kube-controller-manager,
	// kube-scheduler and kubectl (hack/build-control-plane.sh).
	Assets string
	// WebhookBinary is faultline-webhook; empty starts no webhook.
	WebhookBinary string
	// WebhookArgs are extra flags for faultline-webhook.
	WebhookArgs []string
	// Scheduler starts kube-scheduler too (the e2e node simulator needs
	// pods bound to its node).
	Scheduler bool
	// StateDir receives the kubeconfig and process logs.
	StateDir string
	// Namespace is faultline's own namespace.
	Namespace string
	// CRDDir holds CRDs to install before anything else starts.
	CRDDir string
	// Mutating and Validating replace the Go-built webhook configurations
	// (e2e passes the Helm chart's rendered ones); envtest points their
	// clientConfig at the local webhook process either way.
	Mutating   *admissionregistrationv1.MutatingWebhookConfiguration
	Validating *admissionregistrationv1.ValidatingWebhookConfiguration
}

// Cluster is a running local control plane.
type Cluster struct {
	Config     *rest.Config
	Kubeconfig string
	Kubectl    string
	env        *envtest.Environment
	mu         sync.Mutex
	procs      []*proc
	webhook    *proc
	opts       Options
}

// proc is a started process; done closes when it exits, whoever waits.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Exited returns an error naming the first process that ended on its own,
// so callers waiting for the cluster to do something can say why it won't.
func (c *Cluster) Exited() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v); see %s", p.name, p.err, c.logPath(p.name))
		default:
		}
	}
	return nil
}

// Start brings everything up, waiting until each part answers.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Namespace == "" {
		opts.Namespace = "faultline-system"
	}
	if err := os.MkdirAll(opts.StateDir, 0o755); err != nil {
		return nil, err
	}
	c = &Cluster{opts: opts, Kubectl: filepath.Join(opts.Assets, "kubectl")}
	started := c // the named result is nil on the error paths
	defer func() {
		if err != nil {
			_ = started.Stop()
		}
	}()
	env := &envtest.Environment{BinaryAssetsDirectory: opts.Assets}
	if opts.CRDDir != "" {
		env.CRDDirectoryPaths = []string{opts.CRDDir}
		env.ErrorIfCRDPathMissing = true
	}
	if opts.WebhookBinary != "" {
		if opts.Mutating == nil {
			opts.Mutating = webhook.MutatingWebhookConfiguration(admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: "faultline-webhook", Namespace: opts.Namespace, Path: ptr.To(webhook.Path)},
			}, opts.Namespace)
		}
		if opts.Validating == nil {
			opts.Validating = webhook.ValidatingWebhookConfiguration(admissionregistrationv1.WebhookClientConfig{
				Service: &admissionregistrationv1.ServiceReference{Name: "faultline-webhook", Namespace: opts.Namespace, Path: ptr.To(webhook.ValidatePath)},
			}, opts.Namespace)
		}
		env.WebhookInstallOptions.MutatingWebhooks = []*admissionregistrationv1.MutatingWebhookConfiguration{opts.Mutating}
		env.WebhookInstallOptions.ValidatingWebhooks = []*admissionregistrationv1.ValidatingWebhookConfiguration{opts.Validating}
	}
	c.env = env
	if c.Config, err = env.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w", err)
	}
	// faultline's own namespace holds its Leases (blast-radius slots).
	cl, err := client.New(c.Config, client.Options{})
	if err != nil {
		return nil, err
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: opts.Namespace}}); err != nil {
		return nil, fmt.Errorf("creating namespace %s: %w", opts.Namespace, err)
	}
	admin, err := env.ControlPlane.AddUser(envtest.User{Name: "faultline-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("adding admin user: %w", err)
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(opts.StateDir, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := c.spawn("kube-controller-manager", filepath.Join(opts.Assets, "kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--use-service-account-credentials=false", "--controllers=*",
		"--cert-dir="+filepath.Join(opts.StateDir, "kcm-certs"),
	); err != nil {
		return nil, err
	}
	if opts.Scheduler {
		sport, err := freePort()
		if err != nil {
			return nil, err
		}
		if err := c.spawn("kube-scheduler", filepath.Join(opts.Assets, "kube-scheduler"),
			"--kubeconfig="+c.Kubeconfig, "--authentication-kubeconfig="+c.Kubeconfig, "--authorization-kubeconfig="+c.Kubeconfig,
			"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(sport),
			"--cert-dir="+filepath.Join(opts.StateDir, "scheduler-certs"),
		); err != nil {
			return nil, err
		}
	}
	if opts.WebhookBinary != "" {
		if err := c.StartWebhook(ctx); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// StartWebhook (re)starts faultline-webhook with envtest's serving certs and
// waits until /readyz answers.
func (c *Cluster) StartWebhook(ctx context.Context) error {
	wo := c.env.WebhookInstallOptions
	probe, err := freePort()
	if err != nil {
		return err
	}
	metrics, err := freePort()
	if err != nil {
		return err
	}
	args := append([]string{
		"--cert-dir=" + wo.LocalServingCertDir,
		"--webhook-port=" + strconv.Itoa(wo.LocalServingPort),
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(probe),
		"--metrics-bind-address=127.0.0.1:" + strconv.Itoa(metrics),
		"--namespace=" + c.opts.Namespace,
	}, c.opts.WebhookArgs...)
	p, err := c.start("faultline-webhook", c.opts.WebhookBinary, args...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.webhook = p
	c.mu.Unlock()
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", probe)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(ready); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return c.waitTLS(ctx, wo.LocalServingHost, wo.LocalServingPort)
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("faultline-webhook exited (%v); see %s", p.err, c.logPath("faultline-webhook"))
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("faultline-webhook not ready at %s; see %s", ready, c.logPath("faultline-webhook"))
}

// StopWebhook kills faultline-webhook, as a crash would.
func (c *Cluster) StopWebhook() {
	c.mu.Lock()
	p := c.webhook
	c.webhook = nil
	for i, q := range c.procs {
		if q == p {
			c.procs = append(c.procs[:i], c.procs[i+1:]...)
			break
		}
	}
	c.mu.Unlock()
	if p != nil {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (c *Cluster) waitTLS(ctx context.Context, host string, port int) error {
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	for i := 0; i < 100; i++ {
		d := tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // readiness probe only
		if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
			conn.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("webhook TLS port %s not answering", addr)
}

func (c *Cluster) logPath(name string) string { return filepath.Join(c.opts.StateDir, name+".log") }

func (c *Cluster) spawn(name, bin string, args ...string) error {
	_, err := c.start(name, bin, args...)
	return err
}

func (c *Cluster) start(name, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(c.logPath(name))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.Kubeconfig)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p, nil
}

// Stop ends every process this cluster started, the API server last.
func (c *Cluster) Stop() error {
	c.mu.Lock()
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		p := procs[i]
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	if c.env != nil {
		if err := c.env.Stop(); err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
