package localnode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// PauseImage is the sandbox image, built from kubernetes' pause.c by
// hack/images and imported before kubelet starts.
const PauseImage = "registry.k8s.io/pause:3.10.2"

// Options say where the binaries are and what to load.
type Options struct {
	// Assets holds the binaries of hack/build-control-plane.sh.
	Assets string
	// StateDir receives certificates, configuration, logs and the node's
	// data (containerd's and kubelet's roots).
	StateDir string
	// Images are OCI or docker-archive tarballs imported into containerd
	// before kubelet starts (hack/images writes them).
	Images []string
	// MaxRestartBackoff caps the kubelet's crash-loop back-off (e.g. "1s");
	// empty keeps the kubelet's 5 minutes.
	MaxRestartBackoff string
	// Log receives progress lines; nil discards them.
	Log func(string)
}

// Node is a running one-node cluster.
type Node struct {
	Config           *rest.Config
	Kubeconfig       string // system:masters
	Kubectl          string
	ContainerdSocket string
	dir              string
	assets           string
	runc             string
	pki              *pki
	procs            *procs
	rec              *record
	log              func(string)
	maxBackoff       string
}

// Start cleans up after any earlier run, then starts the cluster and waits
// until the node is Ready and cluster DNS answers. On error, everything
// started is stopped and removed again.
func Start(ctx context.Context, opts Options) (n *Node, err error) {
	if err := Preflight(opts.Assets); err != nil {
		return nil, err
	}
	if err := Clean(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	// A state dir from an earlier run holds a dead node's data: start empty.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	for _, d := range []string{"logs", "pod-logs", "kubelet", "containerd"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	n = &Node{
		dir: dir, assets: opts.Assets, Kubectl: filepath.Join(opts.Assets, "kubectl"),
		ContainerdSocket: filepath.Join(dir, "containerd.sock"), runc: "/usr/sbin/runc",
		procs: &procs{logDir: filepath.Join(dir, "logs")}, log: opts.Log,
		rec: &record{StateDir: dir, Sysctls: saveSysctls()}, maxBackoff: opts.MaxRestartBackoff,
	}
	if n.log == nil {
		n.log = func(string) {}
	}
	if err := writeRecord(n.rec); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.log("start failed: removing what was started (logs in " + n.procs.logDir + ")")
			_ = n.Stop(context.Background())
		}
	}()
	if err := setupNetwork(); err != nil {
		return n, err
	}
	if err := n.startControlPlane(ctx); err != nil {
		return n, err
	}
	if err := n.startRuntime(ctx, opts.Images); err != nil {
		return n, err
	}
	if err := n.startNode(ctx); err != nil {
		return n, err
	}
	return n, nil
}

// Exited names a component that ended on its own.
func (n *Node) Exited() error { return n.procs.exited() }

func (n *Node) spawn(name string, argv ...string) error {
	if _, err := n.procs.start(name, []string{"PATH=" + n.assets + ":" + os.Getenv("PATH")}, argv...); err != nil {
		return err
	}
	n.rec.PIDs = n.procs.pids()
	return writeRecord(n.rec)
}

func (n *Node) bin(name string) string { return filepath.Join(n.assets, name) }

// Bin is the path of one of the node's binaries (ctr, kubectl, helm...).
func (n *Node) Bin(name string) string { return n.bin(name) }

func (n *Node) startControlPlane(ctx context.Context) error {
	p, err := newPKI(filepath.Join(n.dir, "pki"))
	if err != nil {
		return err
	}
	n.pki = p
	server := "https://" + net.JoinHostPort(HostIP, strconv.Itoa(apiPort))
	certs := []struct {
		name, cn string
		orgs     []string
		ips      []net.IP
		dns      []string
	}{
		{"apiserver", "kube-apiserver", nil, []net.IP{net.ParseIP(HostIP), net.ParseIP(APIServerIP), net.ParseIP("127.0.0.1")},
			[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}},
		{"admin", "faultline-admin", []string{"system:masters"}, nil, nil},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}, nil, nil},
		{"kubelet", "system:node:" + NodeName, []string{"system:nodes"}, nil, nil},
		{"kube-proxy", "system:kube-proxy", nil, nil, nil},
		// One identity for every controller (no per-controller service
		// accounts), so it needs the rights of all of them.
		{"controller-manager", "system:kube-controller-manager", []string{"system:masters"}, nil, nil},
		{"scheduler", "system:kube-scheduler", nil, nil, nil},
		{"coredns", "coredns", []string{"system:masters"}, nil, nil},
	}
	for _, c := range certs {
		if err := p.issue(c.name, c.cn, c.orgs, c.ips, c.dns); err != nil {
			return err
		}
	}
	kc := map[string]string{}
	for _, u := range []string{"admin", "kubelet", "kube-proxy", "controller-manager", "scheduler", "coredns"} {
		if kc[u], err = p.kubeconfig(u, server); err != nil {
			return err
		}
	}
	n.Kubeconfig = kc["admin"]
	etcdClient, err := freePort()
	if err != nil {
		return err
	}
	etcdPeer, err := freePort()
	if err != nil {
		return err
	}
	n.log("starting etcd and kube-apiserver on " + server)
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	if err := n.spawn("etcd", n.bin("etcd"), "--data-dir="+filepath.Join(n.dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer), "--unsafe-no-fsync"); err != nil {
		return err
	}
	if err := n.spawn("kube-apiserver", n.bin("kube-apiserver"),
		"--etcd-servers="+etcdURL, "--bind-address="+HostIP, "--advertise-address="+HostIP, "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+p.path("apiserver.crt"), "--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+p.path("sa.pub"), "--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+ServiceCIDR, "--authorization-mode=Node,RBAC", "--allow-privileged=true",
		"--kubelet-client-certificate="+p.path("apiserver-kubelet-client.crt"), "--kubelet-client-key="+p.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP", "--enable-admission-plugins=NodeRestriction",
	); err != nil {
		return err
	}
	if n.Config, err = clientcmd.BuildConfigFromFlags("", n.Kubeconfig); err != nil {
		return err
	}
	if err := n.waitHealthy(ctx, "kube-apiserver", 60*time.Second); err != nil {
		return err
	}
	kcm, err := freePort()
	if err != nil {
		return err
	}
	sched, err := freePort()
	if err != nil {
		return err
	}
	n.log("starting kube-controller-manager and kube-scheduler")
	if err := n.spawn("kube-controller-manager", n.bin("kube-controller-manager"),
		"--kubeconfig="+kc["controller-manager"], "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(kcm),
		"--use-service-account-credentials=false", "--controllers=*",
		"--service-account-private-key-file="+p.path("sa.key"), "--root-ca-file="+p.path("ca.crt"),
		"--cluster-signing-cert-file="+p.path("ca.crt"), "--cluster-signing-key-file="+p.path("ca.key"),
		"--cert-dir="+filepath.Join(n.dir, "kcm-certs")); err != nil {
		return err
	}
	return n.spawn("kube-scheduler", n.bin("kube-scheduler"),
		"--kubeconfig="+kc["scheduler"], "--authentication-kubeconfig="+kc["scheduler"], "--authorization-kubeconfig="+kc["scheduler"],
		"--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(sched),
		"--cert-dir="+filepath.Join(n.dir, "scheduler-certs"))
}

func (n *Node) waitHealthy(ctx context.Context, what string, limit time.Duration) error {
	rt, err := rest.TransportFor(n.Config)
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	return n.poll(ctx, limit, what+" healthy", func() bool {
		resp, err := hc.Get(n.Config.Host + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// poll waits for cond, failing early when a component has exited.
func (n *Node) poll(ctx context.Context, limit time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return nil
		}
		if err := n.procs.exited(); err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %s (logs in %s)", what, limit, n.procs.logDir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Client is a controller-runtime client with the default scheme.
func (n *Node) Client() (client.Client, error) { return client.New(n.Config, client.Options{}) }

// Stop deletes every pod first, so that kubelet and the CNI plugins remove
// their sandboxes, network namespaces and addresses the normal way, then
// stops the processes and removes whatever is left (Clean).
func (n *Node) Stop(ctx context.Context) error {
	// Controllers would replace the pods being deleted: they stop first.
	n.procs.stop(5*time.Second, "kube-controller-manager", "kube-scheduler")
	if n.Config != nil && n.procs.exited() == nil {
		if cl, err := n.Client(); err == nil {
			n.deleteAllPods(ctx, cl)
		}
	}
	n.procs.stopAll(10 * time.Second)
	return Clean()
}

func (n *Node) deleteAllPods(ctx context.Context, cl client.Client) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var pods corev1.PodList
	if err := cl.List(ctx, &pods); err != nil {
		return
	}
	for i := range pods.Items {
		_ = cl.Delete(ctx, &pods.Items[i], client.GracePeriodSeconds(1))
	}
	for ctx.Err() == nil {
		if err := cl.List(ctx, &pods); err != nil || len(pods.Items) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.log(fmt.Sprintf("%d pods still there after 60s; removing them by force", len(pods.Items)))
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

var errMissing = errors.New("this machine cannot run the node")
