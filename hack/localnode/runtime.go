package localnode

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// startRuntime starts containerd in the node's namespace (the CNI plugins it
// runs make the bridge there) and imports the images.
func (n *Node) startRuntime(ctx context.Context, images []string) error {
	if err := n.writeCNIConfig(); err != nil {
		return err
	}
	cfg, err := n.writeContainerdConfig()
	if err != nil {
		return err
	}
	n.log("starting containerd")
	if err := n.spawn("containerd", inNode(n.bin("containerd"), "--config", cfg)...); err != nil {
		return err
	}
	if err := n.poll(ctx, 30*time.Second, "containerd socket", func() bool {
		c, err := net.Dial("unix", n.ContainerdSocket)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return err
	}
	for _, img := range images {
		if err := n.ImportImage(ctx, img); err != nil {
			return err
		}
	}
	return nil
}

// ImportImage loads an image tarball into containerd's k8s.io namespace,
// where kubelet finds it (pods use imagePullPolicy IfNotPresent or Never).
func (n *Node) ImportImage(ctx context.Context, tarball string) error {
	out, err := exec.CommandContext(ctx, n.bin("ctr"), "-a", n.ContainerdSocket, "-n", "k8s.io",
		"images", "import", "--no-unpack=false", "--platform", "linux/amd64", tarball).CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing %s: %w: %s", tarball, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startNode starts kubelet, kube-proxy and CoreDNS, and waits for the node
// to be Ready and DNS to answer.
func (n *Node) startNode(ctx context.Context) error {
	kcfg, err := n.writeKubeletConfig()
	if err != nil {
		return err
	}
	n.log("starting kubelet (node " + NodeName + ", " + NodeIP + ")")
	if err := n.spawn("kubelet", inNode(n.bin("kubelet"), "--config="+kcfg,
		"--kubeconfig="+n.pki.path("kubelet.kubeconfig"), "--root-dir="+filepath.Join(n.dir, "kubelet"),
		"--cert-dir="+filepath.Join(n.dir, "kubelet", "pki"), "--hostname-override="+NodeName, "--node-ip="+NodeIP)...); err != nil {
		return err
	}
	pcfg, err := n.writeKubeProxyConfig(n.pki.path("kube-proxy.kubeconfig"))
	if err != nil {
		return err
	}
	if err := n.spawn("kube-proxy", inNode(n.bin("kube-proxy"), "--config="+pcfg)...); err != nil {
		return err
	}
	corefile, err := n.writeCorefile(n.pki.path("coredns.kubeconfig"))
	if err != nil {
		return err
	}
	if err := n.spawn("coredns", inNode(n.bin("coredns"), "-conf", corefile)...); err != nil {
		return err
	}
	cl, err := n.Client()
	if err != nil {
		return err
	}
	if err := n.clusterObjects(ctx, cl); err != nil {
		return err
	}
	if err := n.poll(ctx, 60*time.Second, "node "+NodeName+" Ready", func() bool { return nodeReady(ctx, cl) }); err != nil {
		return err
	}
	n.log("node Ready")
	return n.poll(ctx, 30*time.Second, "cluster DNS answering at "+DNSIP, func() bool {
		return dnsAnswers(ctx)
	})
}

func dnsAnswers(ctx context.Context) bool {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", net.JoinHostPort(DNSIP, "53"))
	}}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	addrs, err := r.LookupHost(ctx, "kubernetes.default.svc.cluster.local")
	return err == nil && len(addrs) > 0 && addrs[0] == APIServerIP
}
