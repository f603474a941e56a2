package localnode

import (
	"fmt"
	"os"
	"path/filepath"
)

// The node's configuration files. Each one says why it differs from a
// default where this machine forces it.

func (n *Node) writeContainerdConfig() (string, error) {
	s := n.dir
	cfg := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[ttrpc]
  address = %[4]q
[plugins.'io.containerd.cri.v1.images'.pinned_images]
  # imported by the run, never pulled
  sandbox = %[5]q
[plugins.'io.containerd.cri.v1.runtime']
  # this machine gives no CAP_SYS_RESOURCE: an oom_score_adj below the
  # runtime's own would fail every container
  restrict_oom_score_adj = true
  # pod network namespaces under the state dir, so a crashed run's are found
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = %[6]q
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[7]q
        SystemdCgroup = false
`, filepath.Join(s, "containerd", "root"), filepath.Join(s, "containerd", "state"), n.ContainerdSocket,
		n.ContainerdSocket+".ttrpc", PauseImage, filepath.Join(s, "cni", "net.d"), n.runc)
	return n.write("containerd.toml", cfg)
}

// writeCNIConfig: a bridge with host-local addresses of both families. cniVersion 1.0.0 is
// the newest Debian's plugins speak; no ipMasq (nothing leaves the machine),
// hairpin so that a pod reaches itself through a Service.
func (n *Node) writeCNIConfig() error {
	dir := filepath.Join(n.dir, "cni", "net.d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	cfg := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"faultline","plugins":[
 {"type":"bridge","bridge":%q,"isGateway":true,"ipMasq":false,"hairpinMode":true,
  "ipam":{"type":"host-local","ranges":[[{"subnet":%q}],[{"subnet":%q}]],"routes":[{"dst":"0.0.0.0/0"},{"dst":"::/0"}],"dataDir":%q}},
 {"type":"portmap","capabilities":{"portMappings":true}}]}
`, bridge, PodCIDR, PodCIDR6, filepath.Join(n.dir, "cni", "ipam"))
	return os.WriteFile(filepath.Join(dir, "10-faultline.conflist"), []byte(cfg), 0o644)
}

func (n *Node) writeKubeletConfig() (string, error) {
	cfg := fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# this machine: cgroup v1 hybrid, no systemd, no swap accounting
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://%[1]s
address: %[2]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDNS: [%[3]s]
clusterDomain: cluster.local
# x509 only: anyone reaching :10250 anonymously could exec into pods
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: %[4]q}
authorization: {mode: AlwaysAllow}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# a test machine's disk and memory are not the node's to defend
evictionHard: {memory.available: "0%%", nodefs.available: "0%%", nodefs.inodesFree: "0%%", imagefs.available: "0%%", imagefs.inodesFree: "0%%"}
# else KUBE-FIREWALL and friends land in iptables tables kubelet shares
makeIPTablesUtilChains: false
podLogsDir: %[5]q
syncFrequency: 10s
serializeImagePulls: false
`, n.ContainerdSocket, NodeIP, DNSIP, n.pki.path("ca.crt"), filepath.Join(n.dir, "pod-logs"))
	if n.maxBackoff != "" {
		cfg += fmt.Sprintf("crashLoopBackOff: {maxContainerRestartPeriod: %s}\n", n.maxBackoff)
	}
	return n.write("kubelet.yaml", cfg)
}

// writeKubeProxyConfig: iptables mode in the node's namespace; conntrack
// limits left alone, since nf_conntrack_max is the host's, not the node's.
func (n *Node) writeKubeProxyConfig(kubeconfig string) (string, error) {
	cfg := fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: %q
hostnameOverride: %s
bindAddress: %s
clientConnection: {kubeconfig: %q}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
`, PodCIDR, NodeName, NodeIP, kubeconfig)
	return n.write("kube-proxy.yaml", cfg)
}

// writeCorefile: cluster.local from the API server, nothing forwarded (this
// machine has no upstream resolver worth asking).
func (n *Node) writeCorefile(kubeconfig string) (string, error) {
	cfg := fmt.Sprintf(`.:53 {
    bind %s
    errors
    health 127.0.0.1:8082
    ready 127.0.0.1:8181
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig %s local
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`, NodeIP, kubeconfig)
	return n.write("Corefile", cfg)
}

func (n *Node) write(name, content string) (string, error) {
	p := filepath.Join(n.dir, name)
	return p, os.WriteFile(p, []byte(content), 0o644)
}
